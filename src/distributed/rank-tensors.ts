import { gatherToHost } from '../collectives/host-io.js';
import { DistributedTensor, describePlacement, Replicate } from '../collectives/layout.js';
import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { elementCount, formatShape, type Shape } from '../runtime/tensor.js';
import type { ProcessGroup } from './process-group.js';
import { allGatherRanks, allReduceRanks } from './ring.js';

/**
 * Collectives across ranks where each rank holds several devices, as NCCL's hierarchical algorithms: inside
 * the process the devices meet on the host through the single-process collectives' host path
 * (`gatherToHost` sums a Partial or joins a Shard), between processes the rings run over the wire, and the
 * result is written to every local device. The input stays the caller's.
 */

/** Partial(sum) over this rank's devices -> the sum over every device of every rank, Replicate locally. */
export async function allReduceAcrossRanks(
  pg: ProcessGroup,
  input: DistributedTensor,
  label = 'allReduceAcrossRanks',
): Promise<DistributedTensor> {
  if (input.placement.kind !== 'partial' || input.dtype !== 'f32') {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `allReduceAcrossRanks needs an f32 Partial(sum) input, got ${input.dtype} ${describePlacement(input.placement)}`,
      { where: label },
    );
  }
  const host = (await gatherToHost(input)) as Float32Array;
  await allReduceRanks(pg, host);
  return replicate(input.group, host, input.globalShape, label);
}

/**
 * Each rank's local tensor (any placement over its devices; the same shape on every rank) joined along
 * `dim` in rank order -> Replicate on this rank's devices, of shape [.., size * local[dim], ..].
 */
export async function allGatherAcrossRanks(
  pg: ProcessGroup,
  input: DistributedTensor,
  dim = 0,
  label = 'allGatherAcrossRanks',
): Promise<DistributedTensor> {
  const shape = input.globalShape;
  if (input.dtype !== 'f32' || !Number.isSafeInteger(dim) || dim < 0 || dim >= shape.length) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `allGatherAcrossRanks: cannot join ${input.dtype} ${formatShape(shape)} along dim ${dim}`,
      {
        where: label,
      },
    );
  }
  const local = (await gatherToHost(input)) as Float32Array;
  const blocks = await allGatherRanks(pg, local);
  const out = new Float32Array(blocks.length);
  // Rank blocks are whole local tensors; along dim they interleave: each of `outer` rows takes each rank's slab.
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const slab = elementCount(shape) / Math.max(1, outer);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < pg.size; r++) {
      const from = r * local.length + o * slab;
      out.set(blocks.subarray(from, from + slab), (o * pg.size + r) * slab);
    }
  }
  const global = [...shape];
  global[dim] = shape[dim]! * pg.size;
  return replicate(input.group, out, global, label);
}

function replicate(group: DeviceGroup, data: Float32Array, shape: Shape, label: string): DistributedTensor {
  const shards = group.devices.map((device, i) => device.upload(data, shape, `${label}[${i}]`));
  return new DistributedTensor(group, Replicate(), shape, shards);
}
