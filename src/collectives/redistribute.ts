import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { Tensor } from '../runtime/tensor.js';
import { boxElements } from './box.js';
import type { CollectiveContext, ReduceOn } from './context.js';
import { checkPlacement, DistributedTensor, localShape, type Placement } from './layout.js';
import { pipelinedHostReduce } from './pipelined-reduce.js';
import { planElementsFromHost, planElementsToHost, planTransfer } from './plan.js';
import { type PieceTarget, streamThroughHost } from './streamed-copy.js';
import type { Traffic } from './traffic.js';

const BYTES = 4;

export interface RedistributeOptions {
  /** Where a Partial(sum) is summed; the context's choice when absent. */
  readonly reduceOn?: ReduceOn;
  /** Label prefix of the new shards. */
  readonly label?: string;
  /**
   * Shards to write the result into (target layout, target group), as nccl's output buffers: reusing them
   * spares the allocation and first-touch cost of fresh device memory on every call. No shard is then kept.
   */
  readonly out?: DistributedTensor;
}

/** A collective's output and what it cost. */
export interface CollectiveResult {
  readonly output: DistributedTensor;
  readonly traffic: Traffic;
}

/**
 * Moves a distributed tensor to `targetPlacement` on `targetGroup` (any group, overlapping the source or
 * not), moving only what each destination needs: every needed box is read once from one source device,
 * all sources are read at once (their copies and maps overlap), and a destination that already holds its
 * box keeps that very shard (the output then shares it with the input: free the input with
 * `input.free(output.shards)`). A Partial(sum) source is summed on the host or on the devices.
 */
export async function redistribute(
  ctx: CollectiveContext,
  input: DistributedTensor,
  targetGroup: DeviceGroup,
  targetPlacement: Placement,
  options: RedistributeOptions = {},
): Promise<CollectiveResult> {
  const shape = input.globalShape;
  const label = options.label ?? 'redistributed';
  checkPlacement(shape, targetPlacement, targetGroup.size, `redistribute to ${targetGroup.describe()}`);
  if (input.placement.kind === 'partial' && input.dtype !== 'f32') {
    throw new ParallelError('DTYPE', 'a Partial(sum) tensor must be f32', { where: 'redistribute' });
  }
  const dst = { devices: targetGroup.devices, placement: targetPlacement };
  const dstElements = targetGroup.devices.map((_, j) =>
    boxElements(shapeBox(localShape(shape, targetPlacement, targetGroup.size, j))),
  );
  const onHost = ctx.reducesOnHost(Math.max(...dstElements) * BYTES, options.reduceOn);
  const out = options.out;
  if (out) checkOut(out, targetGroup, targetPlacement, shape);
  const plan = planTransfer(
    shape,
    { devices: input.group.devices, placement: input.placement },
    dst,
    onHost,
    {
      keepInPlace: !out,
      localThroughHost: out?.shards.map((t) => ctx.transport(t.device).writesDirectly(t)),
    },
  );

  const outputs: (Tensor | null)[] = [];
  const temps: Tensor[] = [];
  try {
    for (const [j, device] of targetGroup.devices.entries()) {
      const kept = plan.alias[j];
      if (kept !== null && kept !== undefined) outputs.push(input.shards[kept]!);
      else if (plan.deviceReductions.some((r) => r.dstRank === j)) outputs.push(null);
      else if (out) outputs.push(out.shards[j]!);
      else {
        // Every element of a destination's box is written below (pieces, sums, local copies).
        outputs.push(
          device.empty(
            localShape(shape, targetPlacement, targetGroup.size, j),
            input.dtype,
            `${label}[${j}]`,
            {
              overwritten: true,
            },
          ),
        );
      }
    }
    let bytesLocal = 0;

    // Where every piece goes: destination shards, or the operands of a sum on a destination device.
    const targets: PieceTarget[][] = plan.pieces.map(() => []);
    plan.pieceWrites.forEach((writes, p) => {
      for (const w of writes) targets[p]!.push({ tensor: outputs[w.dstRank]!, runs: w.runs });
    });
    const operands = plan.deviceReductions.map((reduction) => {
      const device = targetGroup.devices[reduction.dstRank]!;
      const tshape = localShape(shape, targetPlacement, targetGroup.size, reduction.dstRank);
      return reduction.operands.map((operand) => {
        if (operand.kind === 'alias') return input.shards[operand.srcRank]!;
        const temp = device.empty(tshape, 'f32', `${label}[${reduction.dstRank}]/partial`, {
          overwritten: true,
        });
        temps.push(temp);
        if (operand.kind === 'local') {
          ctx.transport(device).copyWithin(input.shards[operand.copy.srcRank]!, temp, operand.copy.segments);
          bytesLocal += operand.copy.elements * BYTES;
        } else {
          targets[operand.piece]!.push({ tensor: temp, runs: [{ offset: 0, count: temp.size }] });
        }
        return temp;
      });
    });

    if (plan.hostReductions.length > 0) {
      // Reductions stream chunk by chunk; each reads its own pieces, so no copy pieces remain to move.
      await pipelinedHostReduce(ctx, input.shards, plan, plan.hostReductions, outputs as Tensor[]);
    } else {
      await streamThroughHost(ctx, input.shards, plan, targets);
    }
    // Queued after the host writes so that reads of the sources are not held behind the copies. A copy
    // runs on the driver's queue thread, where a host write of the same box (which the host often reads
    // anyway, as an AllGather's own shard) would take the host thread: 3 devices, 16 MiB, ~10% faster.
    for (const copy of plan.localCopies) {
      const device = targetGroup.devices[copy.dstRank]!;
      ctx.transport(device).copyWithin(input.shards[copy.srcRank]!, outputs[copy.dstRank]!, copy.segments);
      bytesLocal += copy.elements * BYTES;
    }

    // Settled, not raced: a sum still running when another fails would land after the cleanup below.
    const sums = await Promise.allSettled(
      plan.deviceReductions.map(async (reduction, r) => {
        const device = targetGroup.devices[reduction.dstRank]!;
        const sum = await device.kernels.sum(operands[r]!, `${label}[${reduction.dstRank}]`);
        if (!out) {
          outputs[reduction.dstRank] = sum;
          return;
        }
        outputs[reduction.dstRank] = out.shards[reduction.dstRank]!;
        ctx
          .transport(device)
          .copyWithin(sum, out.shards[reduction.dstRank]!, [{ srcOffset: 0, dstOffset: 0, count: sum.size }]);
        sum.free();
      }),
    );
    const failed = sums.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const temp of temps) temp.free();
    const traffic: Traffic = {
      bytesToHost: planElementsToHost(plan) * BYTES,
      bytesFromHost:
        (planElementsFromHost(plan) +
          plan.deviceReductions.reduce(
            (n, r) => n + r.operands.filter((o) => o.kind === 'piece').length * dstElements[r.dstRank]!,
            0,
          )) *
        BYTES,
      bytesLocal,
      keptShards: plan.alias.filter((a) => a !== null).length,
    };
    return {
      output: new DistributedTensor(targetGroup, targetPlacement, shape, outputs as Tensor[]),
      traffic,
    };
  } catch (error) {
    for (const temp of temps) temp.free();
    outputs.forEach((t, j) => {
      if (t && (plan.alias[j] === null || plan.alias[j] === undefined) && !out) t.free();
    });
    throw error;
  }
}

function checkOut(
  out: DistributedTensor,
  group: DeviceGroup,
  placement: Placement,
  shape: readonly number[],
): void {
  const sameGroup =
    out.group.size === group.size && out.group.devices.every((d, i) => d === group.devices[i]);
  if (!sameGroup) {
    throw new ParallelError(
      'GROUP',
      `output shards live on ${out.group.describe()}, not ${group.describe()}`,
      {
        where: 'redistribute',
      },
    );
  }
  const sameShape =
    out.globalShape.length === shape.length && out.globalShape.every((d, i) => d === shape[i]);
  if (!sameShape || JSON.stringify(out.placement) !== JSON.stringify(placement)) {
    throw new ParallelError('SHAPE', `output ${out.describe()} does not match the target layout`, {
      where: 'redistribute',
    });
  }
}

function shapeBox(shape: readonly number[]) {
  return { start: shape.map(() => 0), end: shape };
}
