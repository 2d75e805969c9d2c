import type { HostArray, Tensor } from '../runtime/tensor.js';
import { boxElements, type Run } from './box.js';
import type { CollectiveContext } from './context.js';
import { sumInto } from './host-sum.js';
import type { HostReduction, TransferPlan } from './plan.js';
import type { HostLease } from './transport.js';

/**
 * Elements per chunk of a pipelined host sum (2 MiB of f32): with the SIMD sum, 1 MiB chunks left the loop
 * bound by per-chunk submit/map round trips (~0.1 ms per source read), and 4 MiB ones by the unoverlapped
 * first read and last write, and by writes that outgrow Dawn's upload ring (16 MiB over 3 lavapipe devices:
 * ~8-10 ms at 2 MiB; ~12 ms at 1 MiB; 40-150 ms with 4-8 MiB chunks).
 */
export const REDUCE_CHUNK_ELEMENTS = 512 * 1024;

/** Chunks whose reads are in flight while one is summed; deeper read-ahead measured no faster on 2 cores. */
export const REDUCE_READ_AHEAD = 1;

/** Where each chunk of a `total`-element sum starts and how long it is. */
export function reduceChunks(total: number): { from: number; count: number }[] {
  const chunks: { from: number; count: number }[] = [];
  for (let from = 0; from < total; from += REDUCE_CHUNK_ELEMENTS) {
    chunks.push({ from, count: Math.min(REDUCE_CHUNK_ELEMENTS, total - from) });
  }
  return chunks;
}

/** The part of a run list covering elements [from, from + count) of the sequence it enumerates. */
export function sliceRuns(runs: readonly Run[], from: number, count: number): Run[] {
  const out: Run[] = [];
  let seen = 0;
  for (const run of runs) {
    const lo = Math.max(from, seen);
    const hi = Math.min(from + count, seen + run.count);
    if (lo < hi) out.push({ offset: run.offset + (lo - seen), count: hi - lo });
    seen += run.count;
    if (seen >= from + count) break;
  }
  return out;
}

function writeRuns(ctx: CollectiveContext, tensor: Tensor, data: HostArray, runs: readonly Run[]): void {
  let at = 0;
  for (const run of runs) {
    ctx.transport(tensor.device).write(tensor, data.subarray(at, at + run.count), run.offset);
    at += run.count;
  }
}

interface ReduceChunk {
  readonly reduction: HostReduction;
  readonly from: number;
  readonly count: number;
}

/**
 * Sums host reductions chunk by chunk, all of them as one stream: the reads of the next chunk (copies and
 * maps on every source device) are in flight while the host sums the current one and writes it out, so
 * device copies and the host loop overlap, across the boundary between two reductions too. One stream
 * rather than one pipeline per reduction side by side (a ReduceScatter has one per destination): as fast
 * (16 MiB over 3 devices, A/B within noise), with a third of the staging (5.5 instead of 16.5 MiB a device).
 */
export async function pipelinedHostReduce(
  ctx: CollectiveContext,
  sources: readonly Tensor[],
  plan: TransferPlan,
  reductions: readonly HostReduction[],
  outputs: readonly Tensor[],
): Promise<void> {
  const chunks: ReduceChunk[] = reductions.flatMap((reduction) =>
    reduceChunks(boxElements(reduction.box)).map((c) => ({ reduction, ...c })),
  );
  const simd = ctx.hostSum;
  const issue = ({ reduction, from, count }: ReduceChunk): Promise<HostLease[]> =>
    Promise.all(
      reduction.pieces.map((p) => {
        const piece = plan.pieces[p]!;
        return ctx
          .transport(sources[piece.srcRank]!.device)
          .read(sources[piece.srcRank]!, sliceRuns(piece.runs, from, count));
      }),
    );
  const pending: Promise<HostLease[]>[] = [];
  let issued = 0;
  const fill = () => {
    while (issued < chunks.length && pending.length < REDUCE_READ_AHEAD)
      pending.push(issue(chunks[issued++]!));
  };
  for (const { reduction, from, count } of chunks) {
    fill();
    const current = pending.shift()!;
    fill();
    let leases: HostLease[];
    try {
      leases = await current;
    } catch (error) {
      for (const p of pending) for (const lease of await p.catch(() => [])) lease.release();
      throw error;
    }
    const inputs = leases.map((l) => l.data as Float32Array);
    let sum: Float32Array;
    if (simd) {
      // Copied into wasm memory by the sum itself, so the staging buffers go back to the pool (and can be
      // mapped for a later chunk) before the writes are issued.
      sum = simd.sum(inputs, count);
      for (const lease of leases) lease.release();
    } else {
      // Summed in place into the first source's mapped range: writeBuffer copies at call time, so the range
      // can be unmapped right after the writes, and no scratch buffer is streamed through.
      sum = inputs[0]!;
      sumInto(sum, inputs);
    }
    for (const w of reduction.writes)
      writeRuns(ctx, outputs[w.dstRank]!, sum, sliceRuns(w.runs, from, count));
    if (!simd) for (const lease of leases) lease.release();
  }
}
