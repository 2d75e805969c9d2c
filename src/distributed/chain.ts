import { sumInto } from '../collectives/host-sum.js';
import { chunkCount, chunkElements, chunkView, mod, payloadOf } from './chunks.js';
import { FRAME_KIND } from './frames.js';
import type { ProcessGroup } from './process-group.js';

const DATA = FRAME_KIND.data;

/**
 * Broadcast from `root` as a pipelined chain root -> root+1 -> ... : each rank forwards every chunk as it
 * arrives, so the time is one pass of the data over a link plus (n-2) chunks, not (n-1) passes. Every rank
 * passes a buffer of the same length; the others' are overwritten with the root's.
 */
export async function broadcastRanks(pg: ProcessGroup, data: Float32Array, root = 0): Promise<Float32Array> {
  const n = pg.size;
  if (n === 1) return data;
  const seq = pg.nextSeq();
  const pos = mod(pg.rank - root, n);
  const next = mod(pg.rank + 1, n);
  const prev = mod(pg.rank - 1, n);
  const per = chunkElements(pg);
  const chunks = chunkCount(data.length, per);
  for (let k = 0; k < chunks; k++) {
    const view = chunkView(data, 0, data.length, per, k);
    if (pos > 0) {
      const frame = await pg.recv(prev, DATA, seq, 0, k, `broadcast from rank ${root} chunk ${k}`);
      view.set(payloadOf(frame, view.length, chunks, prev, 'broadcast'));
    }
    if (pos < n - 1) pg.send(next, DATA, seq, 0, k, chunks, view);
  }
  return data;
}

/**
 * Reduce (sum) to `root` as a pipelined chain ending there: root+1 sends, each rank after it adds its own
 * chunk and forwards, the root adds last. Only the root's `data` changes (it receives the sum).
 */
export async function reduceRanks(pg: ProcessGroup, data: Float32Array, root = 0): Promise<Float32Array> {
  const n = pg.size;
  if (n === 1) return data;
  const seq = pg.nextSeq();
  const pos = mod(pg.rank - root, n);
  // The chain runs from position 1 up to n-1, then to the root: the root's left neighbour sends to it.
  const from = mod(pg.rank - 1, n);
  const to = mod(pg.rank + 1, n);
  const first = 1;
  const per = chunkElements(pg);
  const chunks = chunkCount(data.length, per);
  const scratch = new Float32Array(Math.min(per, data.length));
  for (let k = 0; k < chunks; k++) {
    const view = chunkView(data, 0, data.length, per, k);
    if (pos === first) {
      pg.send(to, DATA, seq, 0, k, chunks, view);
      continue;
    }
    const frame = await pg.recv(from, DATA, seq, 0, k, `reduce to rank ${root} chunk ${k}`);
    const got = payloadOf(frame, view.length, chunks, from, 'reduce');
    if (pos === 0) sumInto(view, [view, got]);
    else {
      const sum = scratch.subarray(0, view.length);
      sumInto(sum, [view, got]);
      pg.send(to, DATA, seq, 0, k, chunks, sum);
    }
  }
  return data;
}
