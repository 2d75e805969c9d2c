import type { HostArray, Tensor } from '../runtime/tensor.js';
import { boxElements, type Run } from './box.js';
import type { CollectiveContext } from './context.js';
import { sumInto } from './host-sum.js';
import type { HostReduction, TransferPlan } from './plan.js';
import type { HostLease } from './transport.js';

/** Elements per chunk of a pipelined host sum (1 MiB of f32): small enough to overlap, big enough to stream. */
export const REDUCE_CHUNK_ELEMENTS = Number(process.env.RC ?? 256 * 1024);

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

/**
 * Sums one host reduction chunk by chunk: the reads of chunk k+1 (copies and maps on every source device)
 * are in flight while the host sums chunk k and writes it out, so device copies and the host loop overlap.
 */
export async function pipelinedHostReduce(
  ctx: CollectiveContext,
  sources: readonly Tensor[],
  plan: TransferPlan,
  reduction: HostReduction,
  outputs: readonly Tensor[],
): Promise<void> {
  const total = boxElements(reduction.box);
  const issue = (from: number): Promise<HostLease[]> => {
    const count = Math.min(REDUCE_CHUNK_ELEMENTS, total - from);
    return Promise.all(
      reduction.pieces.map((p) => {
        const piece = plan.pieces[p]!;
        return ctx
          .transport(sources[piece.srcRank]!.device)
          .read(sources[piece.srcRank]!, sliceRuns(piece.runs, from, count));
      }),
    );
  };
  let pending: Promise<HostLease[]> | null = issue(0);
  for (let from = 0; from < total; from += REDUCE_CHUNK_ELEMENTS) {
    const next = from + REDUCE_CHUNK_ELEMENTS;
    const current: Promise<HostLease[]> = pending!;
    pending = next < total ? issue(next) : null;
    let leases: HostLease[];
    const T0 = performance.now();
    try {
      leases = await current;
    } catch (error) {
      if (pending) for (const lease of await pending.catch(() => [])) lease.release();
      throw error;
    }
    const count = Math.min(REDUCE_CHUNK_ELEMENTS, total - from);
    const T1 = performance.now();
    const sum = ctx.hostScratch(count);
    sumInto(
      sum,
      leases.map((l) => l.data as Float32Array),
    );
    const T2 = performance.now();
    for (const w of reduction.writes)
      writeRuns(ctx, outputs[w.dstRank]!, sum, sliceRuns(w.runs, from, count));
    const T3 = performance.now();
    for (const lease of leases) lease.release();
    if (process.env.PROF) console.log(`wait ${(T1 - T0).toFixed(2)} sum ${(T2 - T1).toFixed(2)} write ${(T3 - T2).toFixed(2)} rel ${(performance.now() - T3).toFixed(2)}`);
  }
}
