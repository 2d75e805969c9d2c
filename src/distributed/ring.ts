import { sumInto } from '../collectives/host-sum.js';
import { ParallelError } from '../errors.js';
import { chunkCount, chunkElements, chunkView, mod, payloadOf, segmentsOf } from './chunks.js';
import { FRAME_KIND } from './frames.js';
import type { ProcessGroup } from './process-group.js';

const DATA = FRAME_KIND.data;

/**
 * The ring's steps over segments of `data` (one segment per rank). Reduce-scatter steps s = 0..n-2: rank r
 * sends segment r-s-1 to its right and adds segment r-s-2 from its left, ending with segment r summed;
 * all-gather steps copy instead, sending segment r-t. Each segment moves in chunks, and every chunk is sent
 * on as soon as it is reduced, so a rank sends one chunk while the next arrives and the one before is summed.
 * Each rank sends (n-1)/n of the data per phase: 2(n-1)/n for an AllReduce, the bandwidth optimum.
 */
async function ring(
  pg: ProcessGroup,
  data: Float32Array,
  phases: { reduce: boolean; gather: boolean },
  op: string,
  sizes?: readonly number[],
): Promise<void> {
  const n = pg.size;
  const r = pg.rank;
  if (n === 1) return;
  const seq = pg.nextSeq();
  const right = mod(r + 1, n);
  const left = mod(r - 1, n);
  const seg = segmentsOf(data.length, n, sizes);
  const per = chunkElements(pg);
  const reduceSteps = phases.reduce ? n - 1 : 0;
  const steps = reduceSteps + (phases.gather ? n - 1 : 0);
  const sendSeg = (step: number) =>
    step < reduceSteps ? mod(r - step - 1, n) : mod(r - (step - reduceSteps), n);
  const sendChunks = (step: number, s: number, only?: number) => {
    const chunks = chunkCount(seg[s]!.len, per);
    for (let k = only ?? 0; k < (only === undefined ? chunks : only + 1); k++) {
      pg.send(right, DATA, seq, step, k, chunks, chunkView(data, seg[s]!.off, seg[s]!.len, per, k));
    }
  };
  sendChunks(0, sendSeg(0));
  for (let step = 0; step < steps; step++) {
    const s = mod(sendSeg(step) - 1, n);
    const { off, len } = seg[s]!;
    const chunks = chunkCount(len, per);
    for (let k = 0; k < chunks; k++) {
      const view = chunkView(data, off, len, per, k);
      const frame = await pg.recv(left, DATA, seq, step, k, `${op} step ${step} chunk ${k}`);
      const got = payloadOf(frame, view.length, chunks, left, op);
      if (step < reduceSteps) sumInto(view, [view, got]);
      else view.set(got);
      // What was just received is what the next step sends: forward this chunk now.
      if (step + 1 < steps) sendChunks(step + 1, s, k);
    }
  }
}

/**
 * AllReduce (sum) of `data` across every rank of the world, in place: a ring reduce-scatter then a ring
 * all-gather, chunked and pipelined. Every rank passes the same length; returns `data`.
 */
export async function allReduceRanks(pg: ProcessGroup, data: Float32Array): Promise<Float32Array> {
  await ring(pg, data, { reduce: true, gather: true }, 'allReduce');
  return data;
}

/**
 * ReduceScatter (sum): every rank passes the whole `data`; rank r gets the sum of segment r (the even
 * split, first ranks one more, or `sizes`). `data` is used as scratch.
 */
export async function reduceScatterRanks(
  pg: ProcessGroup,
  data: Float32Array,
  sizes?: readonly number[],
): Promise<Float32Array> {
  await ring(pg, data, { reduce: true, gather: false }, 'reduceScatter', sizes);
  const { off, len } = segmentsOf(data.length, pg.size, sizes)[pg.rank]!;
  return data.slice(off, off + len);
}

/**
 * AllGather: rank r passes its block; every rank gets the blocks of ranks 0..n-1 one after another. Blocks
 * are all the same length unless `sizes` gives each rank's.
 */
export async function allGatherRanks(
  pg: ProcessGroup,
  local: Float32Array,
  sizes?: readonly number[],
  /** Where to gather (reused call after call, as nccl's receive buffer); a new array when absent. */
  into?: Float32Array,
): Promise<Float32Array> {
  const lens = sizes ?? Array.from({ length: pg.size }, () => local.length);
  const total = lens.reduce((a, b) => a + b, 0);
  if (into && into.length !== total) {
    throw new ParallelError(
      'SHAPE',
      `allGather into ${into.length} elements, the blocks add up to ${total}`,
      {
        fix: "size the output as the sum of every rank's block",
      },
    );
  }
  const out = into ?? new Float32Array(total);
  const seg = segmentsOf(out.length, pg.size, lens);
  out.set(local.subarray(0, seg[pg.rank]!.len), seg[pg.rank]!.off);
  await ring(pg, out, { reduce: false, gather: true }, 'allGather', lens);
  return out;
}

/** Returns once every rank has called it (an AllReduce of one element: the ring carries the wait). */
export async function barrierRanks(pg: ProcessGroup): Promise<void> {
  await allReduceRanks(pg, new Float32Array(1));
}
