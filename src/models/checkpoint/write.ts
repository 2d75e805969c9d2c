import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { ParallelError } from '../../errors.js';
import { encodeHalves } from './half.js';
import { DTYPE_BYTES } from './header.js';

/** One tensor to write: f32 values, narrowed on the way out to `dtype` (round to nearest even). */
export interface WritableTensor {
  readonly dtype: 'F32' | 'F16' | 'BF16';
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

function writeFully(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

function bytesOf(tensor: WritableTensor): Uint8Array {
  const { data } = tensor;
  if (tensor.dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(encodeHalves(tensor.dtype, data).buffer);
}

/** The header JSON, padded with spaces to a multiple of 8 bytes so the data section starts aligned. */
function headerBytes(
  path: string,
  names: readonly string[],
  tensors: Readonly<Record<string, WritableTensor>>,
  metadata: Readonly<Record<string, string>> | undefined,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name]!;
    if (!(dtype in { F32: 1, F16: 1, BF16: 1 })) {
      throw new ParallelError('CHECKPOINT', `${path}: tensor '${name}': cannot write dtype ${dtype}`, {
        where: `${path} '${name}'`,
        fix: 'write F32, F16 or BF16',
      });
    }
    const elements = shape.reduce((a, b) => a * b, 1);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elements !== data.length) {
      throw new ParallelError(
        'SHAPE',
        `${path}: tensor '${name}': ${data.length} values do not fill shape [${shape.join(', ')}]`,
        { where: `${path} '${name}'`, fix: 'pass data of exactly product(shape) values' },
      );
    }
    const length = elements * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.alloc(8 + Math.ceil(json.length / 8) * 8, ' ');
  padded.writeBigUInt64LE(BigInt(padded.length - 8), 0);
  json.copy(padded, 8);
  return padded;
}

/**
 * Writes a `.safetensors` file, tensors laid out in sorted-name order. It goes to `path.tmp-<pid>` first and
 * is renamed into place, so a failure never leaves a half-written file under `path`.
 */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, WritableTensor>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  if (endianness() !== 'LE') {
    throw new ParallelError('CHECKPOINT', `${path}: writing needs a little-endian host`, { where: path });
  }
  const names = Object.keys(tensors).sort();
  const header = headerBytes(path, names, tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    writeFully(fd, header);
    // One tensor converted at a time, so narrowing never holds a second copy of the whole model.
    for (const name of names) writeFully(fd, bytesOf(tensors[name]!));
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (cause) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing was created, or it is already gone: either way nothing half-written remains.
    }
    throw new ParallelError('IO', `cannot write ${path}: ${(cause as Error).message}`, {
      where: path,
      fix: 'check that the folder exists, is writable and has space',
      cause,
    });
  }
}
