import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { BYTES_PER_ELEMENT, elementCount, formatShape, type Shape, type Tensor } from '../runtime/tensor.js';
import type { Box } from './box.js';
import type { CollectiveContext } from './context.js';
import type { HostWrite, LocalCopy, ReadPiece } from './plan.js';
import { streamThroughHost } from './streamed-copy.js';
import type { Traffic } from './traffic.js';

export interface AllToAllOptions {
  /** Label prefix of the outputs. */
  readonly label?: string;
  /**
   * Tensors to receive into, one per device of `to`, each of the shape it receives (as nccl's output
   * buffers: reusing them spares the allocation and first-touch cost of fresh memory on every call).
   */
  readonly out?: readonly Tensor[];
}

export interface AllToAllResult {
  readonly outputs: Tensor[];
  readonly traffic: Traffic;
  /** Host time of the call: every read done, every write and copy queued on the destination devices. */
  readonly ms: number;
}

/**
 * The data movement of an all-to-all, as pure data: which rows each source reads to the host for which
 * destination, and which it copies on its own device (source and destination on one device).
 */
export interface AllToAllPlan {
  /** Rows each destination receives: its output is [outputRows[j], ...the inputs' trailing dims]. */
  readonly outputRows: readonly number[];
  /** One per (source, destination) pair on two devices with rows to move; boxes in the source's rows. */
  readonly pieces: readonly ReadPiece[];
  /** Per piece: the one destination it is written to. */
  readonly pieceWrites: readonly (readonly HostWrite[])[];
  readonly localCopies: readonly LocalCopy[];
}

/**
 * Plans an all-to-all of rows of `rowShape`: source r (on `sources[r]`) holds sendCounts[r][j] rows for
 * destination j, the rows for each destination contiguous and in destination order; destination j (on
 * `destinations[j]`) receives them from every source, contiguous and in source order. Pairs that move no
 * elements get nothing: no piece, no copy. Where localThroughHost[j], destination j's own rows are a piece
 * like any other rather than a copy on its device.
 */
export function planAllToAll(
  sources: readonly Device[],
  sendCounts: readonly (readonly number[])[],
  destinations: readonly Device[],
  rowShape: Shape,
  localThroughHost: readonly boolean[] = [],
): AllToAllPlan {
  const rowElements = elementCount(rowShape);
  const outputRows = rowsReceived(sendCounts, destinations.length);
  const pieces: ReadPiece[] = [];
  const pieceWrites: HostWrite[][] = [];
  const localCopies: LocalCopy[] = [];
  // Where source r's rows start in destination j's output: after the rows of sources 0 .. r - 1.
  const dstAt = destinations.map(() => 0);
  sources.forEach((source, r) => {
    let srcAt = 0;
    destinations.forEach((destination, j) => {
      const rows = sendCounts[r]![j]!;
      const elements = rows * rowElements;
      const box: Box = { start: [srcAt, ...rowShape.map(() => 0)], end: [srcAt + rows, ...rowShape] };
      if (elements > 0 && source === destination && !localThroughHost[j]) {
        localCopies.push({
          srcRank: r,
          dstRank: j,
          box,
          segments: [{ srcOffset: srcAt * rowElements, dstOffset: dstAt[j]! * rowElements, count: elements }],
          elements,
        });
      } else if (elements > 0) {
        pieces.push({ srcRank: r, box, runs: [{ offset: srcAt * rowElements, count: elements }], elements });
        pieceWrites.push([{ dstRank: j, runs: [{ offset: dstAt[j]! * rowElements, count: elements }] }]);
      }
      srcAt += rows;
      dstAt[j]! += rows;
    });
  });
  return { outputRows, pieces, pieceWrites, localCopies };
}

/** Rows each of `destinations` receives: the column sums of sendCounts. */
function rowsReceived(sendCounts: readonly (readonly number[])[], destinations: number): number[] {
  return Array.from({ length: destinations }, (_, j) => sendCounts.reduce((n, counts) => n + counts[j]!, 0));
}

/**
 * All-to-all of rows with uneven counts (expert parallelism's token dispatch, and its way back). inputs[r]
 * lives on its own device and is [Σ_j sendCounts[r][j], ...rest]: the rows for destination j contiguous,
 * in j order. outputs[j] on to.devices[j] is [Σ_r sendCounts[r][j], ...rest]: the rows from source r
 * contiguous, in r order. `to` may be the inputs' devices, an overlapping group or a disjoint one; a device
 * that both sends and receives copies its own rows on the device, unless that copy would send the host's
 * writes into its output through Dawn's ring (`copyEndsDirectWrites`): then they cross the host with the
 * rest, one read and one direct write, where the copy cost every other write a second copy (bench/RESULTS.md,
 * "Mixtral"). Everything else crosses the host once (all sources read at once, streamed in chunks as every
 * host-mediated copy). Counts of zero are allowed
 * anywhere: a destination that receives nothing gets [0, ...rest]. f32 and u32 alike.
 */
export async function allToAll(
  ctx: CollectiveContext,
  inputs: readonly Tensor[],
  sendCounts: readonly (readonly number[])[],
  to: DeviceGroup,
  options: AllToAllOptions = {},
): Promise<AllToAllResult> {
  const start = performance.now();
  const label = options.label ?? 'allToAll';
  const { rest, dtype } = checkAllToAll(inputs, sendCounts, to.size);
  const shapes = rowsReceived(sendCounts, to.size).map((rows) => [rows, ...rest]);
  const out = options.out;
  if (out) checkOut(out, inputs, to, shapes, dtype);
  const outputs: Tensor[] = out?.slice() ?? [];
  let plan: AllToAllPlan;
  try {
    // Every row of every output is written below, by a piece or a local copy.
    if (!out) {
      for (const [j, device] of to.devices.entries())
        outputs.push(device.empty(shapes[j]!, dtype, `${label}[${j}]`, { overwritten: true }));
    }
    plan = planAllToAll(
      inputs.map((t) => t.device),
      sendCounts,
      to.devices,
      rest,
      outputs.map((t) => ctx.transport(t.device).copyEndsDirectWrites(t)),
    );
    const targets = plan.pieceWrites.map((writes) =>
      writes.map((w) => ({ tensor: outputs[w.dstRank]!, runs: w.runs })),
    );
    await streamThroughHost(ctx, inputs, plan, targets);
    // Queued after the host writes, as redistribute's: the sources' reads are not held behind the copies.
    for (const copy of plan.localCopies) {
      ctx
        .transport(to.devices[copy.dstRank]!)
        .copyWithin(inputs[copy.srcRank]!, outputs[copy.dstRank]!, copy.segments);
    }
  } catch (error) {
    if (!out) for (const t of outputs) t.free();
    throw error;
  }
  const bytes = BYTES_PER_ELEMENT[dtype];
  const hostElements = plan.pieces.reduce((n, p) => n + p.elements, 0);
  const traffic: Traffic = {
    bytesToHost: hostElements * bytes,
    // Each piece is written to its one destination.
    bytesFromHost: hostElements * bytes,
    bytesLocal: plan.localCopies.reduce((n, c) => n + c.elements, 0) * bytes,
    keptShards: 0,
  };
  return { outputs, traffic, ms: performance.now() - start };
}

/** The inputs' trailing dims and dtype, once every input and count is checked against the others. */
function checkAllToAll(
  inputs: readonly Tensor[],
  sendCounts: readonly (readonly number[])[],
  destinations: number,
): { rest: Shape; dtype: Tensor['dtype'] } {
  const where = 'allToAll';
  const first = inputs[0];
  if (!first) throw new ParallelError('INVALID_ARGUMENT', 'allToAll needs at least one input', { where });
  if (sendCounts.length !== inputs.length || sendCounts.some((row) => row.length !== destinations)) {
    throw new ParallelError(
      'SHAPE',
      `sendCounts must be ${inputs.length} rows (one per input) of ${destinations} counts (one per destination), got [${sendCounts.map((row) => row.length).join(', ')}]`,
      { where },
    );
  }
  const rest = first.shape.slice(1);
  inputs.forEach((input, r) => {
    input.assertLive(where);
    if (input.dtype !== first.dtype) {
      throw new ParallelError(
        'DTYPE',
        `input ${r} '${input.label}' is ${input.dtype}, input 0 ${first.dtype}`,
        {
          where,
        },
      );
    }
    const trailing = input.shape.slice(1);
    if (trailing.length !== rest.length || trailing.some((d, i) => d !== rest[i])) {
      throw new ParallelError(
        'SHAPE',
        `input ${r} '${input.label}' ${formatShape(input.shape)} has rows of another shape than input 0 ${formatShape(first.shape)}`,
        { where, fix: 'every input must be [rows, ...rest] with the same rest' },
      );
    }
    const counts = sendCounts[r]!;
    if (counts.some((c) => !Number.isSafeInteger(c) || c < 0)) {
      throw new ParallelError(
        'SPLIT',
        `sendCounts[${r}] must be non-negative integers, got [${counts.join(', ')}]`,
        {
          where,
        },
      );
    }
    const sum = counts.reduce((a, b) => a + b, 0);
    if (sum !== input.shape[0]) {
      throw new ParallelError(
        'SPLIT',
        `sendCounts[${r}] [${counts.join(', ')}] add up to ${sum} rows, input ${r} '${input.label}' has ${input.shape[0]}`,
        { where },
      );
    }
  });
  return { rest, dtype: first.dtype };
}

function checkOut(
  out: readonly Tensor[],
  inputs: readonly Tensor[],
  to: DeviceGroup,
  shapes: readonly Shape[],
  dtype: Tensor['dtype'],
): void {
  const where = 'allToAll';
  if (out.length !== to.size) {
    throw new ParallelError('GROUP', `${out.length} outputs for ${to.size} destinations`, { where });
  }
  out.forEach((t, j) => {
    t.assertLive(where);
    const device = to.devices[j]!;
    if (t.device !== device) {
      throw new ParallelError('GROUP', `output ${j} lives on ${t.device.name}, not ${device.name}`, {
        where,
      });
    }
    const want = shapes[j]!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new ParallelError(
        'SHAPE',
        `output ${j} '${t.label}' is ${formatShape(t.shape)}, destination ${j} receives ${formatShape(want)}`,
        { where },
      );
    }
    if (t.dtype !== dtype) {
      throw new ParallelError('DTYPE', `output ${j} '${t.label}' is ${t.dtype}, the inputs ${dtype}`, {
        where,
      });
    }
    if (inputs.includes(t)) {
      throw new ParallelError('INVALID_ARGUMENT', `output ${j} '${t.label}' is also an input`, { where });
    }
  });
}
