import { ParallelError } from '../errors.js';
import { asFloat32 } from './frames.js';
import type { Received } from './mailbox.js';
import type { ProcessGroup } from './process-group.js';

export const mod = (a: number, n: number) => ((a % n) + n) % n;

/** Offsets and lengths of `total` elements over `parts`: given sizes, or even with the first ranks taking one more. */
export function segmentsOf(
  total: number,
  parts: number,
  sizes?: readonly number[],
): { off: number; len: number }[] {
  const lens =
    sizes ?? Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
  if (lens.length !== parts || lens.reduce((a, b) => a + b, 0) !== total) {
    throw new ParallelError(
      'SPLIT',
      `segment sizes [${lens.join(', ')}] do not split ${total} over ${parts} ranks`,
    );
  }
  let off = 0;
  return lens.map((len) => {
    const seg = { off, len };
    off += len;
    return seg;
  });
}

/** Elements per chunk of a pipelined collective (the process group's chunk size, in f32). */
export function chunkElements(pg: ProcessGroup): number {
  return Math.max(1, Math.floor(pg.chunkBytes / 4));
}

/** Chunks of a segment: at least one, so an empty segment still sends (and a receiver still waits for) a frame. */
export function chunkCount(len: number, per: number): number {
  return Math.max(1, Math.ceil(len / per));
}

/** The k-th chunk of `data[off, off + len)`. */
export function chunkView(
  data: Float32Array,
  off: number,
  len: number,
  per: number,
  k: number,
): Float32Array {
  const start = off + k * per;
  return data.subarray(start, Math.min(off + len, start + per));
}

/**
 * A received chunk as f32, checked against what this rank expected: a mismatch means the ranks called the
 * collective with different lengths, which would otherwise surface as a wrong result or a hang.
 */
export function payloadOf(
  frame: Received,
  want: number,
  chunks: number,
  src: number,
  op: string,
): Float32Array {
  const got = asFloat32(frame.payload);
  if (got.length !== want || frame.header.chunks !== chunks) {
    throw new ParallelError(
      'SHAPE',
      `${op}: rank ${src} sent a chunk of ${got.length} elements (${frame.header.chunks} chunks) where ${want} (${chunks}) were expected`,
      { fix: 'every rank must call the collective with the same length (and sizes)' },
    );
  }
  return got;
}
