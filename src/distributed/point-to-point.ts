import { ParallelError } from '../errors.js';
import { chunkCount, chunkElements, chunkView } from './chunks.js';
import { asFloat32, FRAME_KIND, type FrameKind } from './frames.js';
import type { ProcessGroup } from './process-group.js';

const P2P = FRAME_KIND.p2p;

/**
 * Sends `data` to rank `dst` in chunks (copied as they are queued, so `data` may change at once after);
 * resolves when the link has taken them. The receiver calls `recvFrom` for this rank, in the same order.
 */
export async function sendTo(pg: ProcessGroup, dst: number, data: Float32Array): Promise<void> {
  checkPeer(pg, dst, 'sendTo');
  const seq = pg.nextSendSeq(dst);
  sendChunks(pg, dst, P2P, seq, 0, data);
  await pg.drained(dst);
}

/** Receives what rank `src` sent with `sendTo`; its length comes with it (into `out` when given, checked). */
export async function recvFrom(pg: ProcessGroup, src: number, out?: Float32Array): Promise<Float32Array> {
  checkPeer(pg, src, 'recvFrom');
  return receiveChunks(pg, src, P2P, pg.nextRecvSeq(src), 0, 'recvFrom', out);
}

export function sendChunks(
  pg: ProcessGroup,
  dst: number,
  kind: FrameKind,
  seq: number,
  step: number,
  data: Float32Array,
): void {
  const per = chunkElements(pg);
  const chunks = chunkCount(data.length, per);
  for (let k = 0; k < chunks; k++)
    pg.send(dst, kind, seq, step, k, chunks, chunkView(data, 0, data.length, per, k));
}

/** Takes a message of unknown length: the first chunk says how many follow; all but the last are full. */
export async function receiveChunks(
  pg: ProcessGroup,
  src: number,
  kind: FrameKind,
  seq: number,
  step: number,
  op: string,
  out?: Float32Array,
): Promise<Float32Array> {
  const per = chunkElements(pg);
  const first = await pg.recv(src, kind, seq, step, 0, `${op} from rank ${src}`);
  const chunks = first.header.chunks;
  const parts = [asFloat32(first.payload)];
  for (let k = 1; k < chunks; k++) {
    parts.push(
      asFloat32((await pg.recv(src, kind, seq, step, k, `${op} from rank ${src} chunk ${k}`)).payload),
    );
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (out && out.length !== length) {
    throw new ParallelError(
      'SHAPE',
      `${op}: rank ${src} sent ${length} elements into a buffer of ${out.length}`,
      {
        fix: 'size the receive buffer as the sender sends',
      },
    );
  }
  const result = out ?? new Float32Array(length);
  parts.forEach((p, k) => {
    result.set(p, k * per);
  });
  return result;
}

function checkPeer(pg: ProcessGroup, peer: number, op: string): void {
  if (!Number.isSafeInteger(peer) || peer < 0 || peer >= pg.size || peer === pg.rank) {
    throw new ParallelError('INVALID_ARGUMENT', `${op}: rank ${peer} is not a peer of rank ${pg.rank}`, {
      fix: `use a rank in 0..${pg.size - 1} other than ${pg.rank}`,
    });
  }
}
