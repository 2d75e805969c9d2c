import { readSync } from 'node:fs';
import { ParallelError } from '../../errors.js';
import { decodeHalves } from './half.js';
import type { SafetensorsDtype } from './header.js';

/** Fills `view` from `position`; a short read means the file changed since its header was checked. */
export function readFully(fd: number, view: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < view.length) {
    let got: number;
    try {
      got = readSync(fd, view, done, view.length - done, position + done);
    } catch (cause) {
      throw new ParallelError('IO', `cannot read ${file}: ${(cause as Error).message}`, {
        where: file,
        cause,
      });
    }
    if (got === 0) {
      throw new ParallelError(
        'CHECKPOINT',
        `${file}: ended at byte ${position + done}, before the data its header lists`,
        {
          where: file,
          fix: 'the file shrank after it was opened; re-copy it',
        },
      );
    }
    done += got;
  }
}

/** `count` elements of `dtype` from `bytes[at..]` (aligned to the element size) into `out[to..]`. */
export function decode(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  at: number,
  count: number,
  out: Float32Array,
  to: number,
) {
  const offset = bytes.byteOffset + at;
  if (dtype === 'F32') out.set(new Float32Array(bytes.buffer, offset, count), to);
  else decodeHalves(dtype as 'F16' | 'BF16', new Uint16Array(bytes.buffer, offset, count), out, to);
}
