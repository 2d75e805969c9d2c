import { closeSync, openSync } from 'node:fs';
import { endianness } from 'node:os';
import { ParallelError } from '../../errors.js';
import { outputFor, type WeightSlice } from '../../parallel/weight-reader.js';
import { closeNamesHint } from './close-names.js';
import {
  checkpointError,
  DTYPE_BYTES,
  type ParsedHeader,
  readHeader,
  type SafetensorsDtype,
  type TensorEntry,
} from './header.js';
import { decode, readFully } from './read-bytes.js';

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';
export type { SafetensorsDtype } from './header.js';
export { type WritableTensor, writeSafetensors } from './write.js';

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** Reads go through a buffer at most this big, so converting never holds a second copy of a tensor. */
const CHUNK_BYTES = 1 << 20;
/** A strided segment at least this long is read on its own; shorter ones are gathered from whole rows. */
const DIRECT_BYTES = 64 << 10;
const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

/**
 * One `.safetensors` file, open for reading. Only the header is read at open; each `readF32` reads just the
 * bytes of the tensor (or slice) asked for, so loading a shard costs host memory near the shard's size.
 */
export class SafetensorsFile {
  /** Bytes read from the data section so far (the header not counted): what a slice really cost. */
  bytesRead = 0;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly header: ParsedHeader,
    private readonly dataStart: number,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      const message = code === 'ENOENT' ? `no such file: ${path}` : `cannot open ${path} (${code ?? cause})`;
      throw new ParallelError('IO', message, { where: path, fix: 'check the path', cause });
    }
    try {
      const { header, dataStart } = readHeader(fd, path);
      return new SafetensorsFile(path, fd, header, dataStart);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const { dtype, shape, begin, end } = this.entry(name);
    return { dtype, shape, byteLength: end - begin };
  }

  /**
   * The tensor, or the part `slice` picks along one dim, as f32 (F16 and BF16 widened exactly). A slice
   * along dim d of shape [..outer, size, ..inner] is `outer` runs of `length * inner` elements.
   */
  readF32(name: string, slice?: WeightSlice, into?: Float32Array): Float32Array {
    const fd = this.openFd(name);
    const entry = this.entry(name);
    if (!FLOAT_DTYPES.includes(entry.dtype)) {
      throw checkpointError(
        this.path,
        `dtype ${entry.dtype} cannot be read as float; readable: ${FLOAT_DTYPES.join(', ')}`,
        name,
        'store this tensor as F32, F16 or BF16',
      );
    }
    if (endianness() !== 'LE') {
      throw new ParallelError('CHECKPOINT', `${this.path}: reading needs a little-endian host`, {
        where: this.path,
      });
    }
    const { outer, size, inner, start, length } = this.plan(name, entry, slice);
    const es = DTYPE_BYTES[entry.dtype];
    const run = length * inner;
    const stride = size * inner;
    const out = outputFor(name, outer * run, into);
    const base = this.dataStart + entry.begin;
    if (out.length === 0) return out;
    if (outer === 1 || length === size) {
      this.readRun(fd, entry.dtype, base + start * inner * es, out.length, out, 0);
    } else if (run * es >= DIRECT_BYTES || stride * es > CHUNK_BYTES) {
      for (let o = 0; o < outer; o++) {
        this.readRun(fd, entry.dtype, base + (o * size + start) * inner * es, run, out, o * run);
      }
    } else {
      // Short runs: read whole blocks of rows into one bounded buffer and pick the runs out of it.
      const rowsPerBlock = Math.floor(CHUNK_BYTES / (stride * es));
      const scratch = new Uint8Array(Math.min(rowsPerBlock, outer) * stride * es);
      for (let o = 0; o < outer; o += rowsPerBlock) {
        const rows = Math.min(rowsPerBlock, outer - o);
        const view = scratch.subarray(0, ((rows - 1) * stride + run) * es);
        this.read(fd, view, base + (o * size + start) * inner * es);
        for (let r = 0; r < rows; r++) decode(entry.dtype, view, r * stride * es, run, out, (o + r) * run);
      }
    }
    return out;
  }

  /** Releases the file; later reads are refused rather than touching a reused descriptor. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private read(fd: number, view: Uint8Array, position: number): void {
    readFully(fd, view, position, this.path);
    this.bytesRead += view.length;
  }

  /** `count` consecutive elements from `position` into `out[at..]`; F32 lands in place, no copy. */
  private readRun(
    fd: number,
    dtype: SafetensorsDtype,
    position: number,
    count: number,
    out: Float32Array,
    at: number,
  ) {
    const es = DTYPE_BYTES[dtype];
    if (dtype === 'F32') {
      this.read(fd, new Uint8Array(out.buffer, out.byteOffset + at * 4, count * 4), position);
      return;
    }
    const perChunk = Math.floor(CHUNK_BYTES / es);
    const scratch = new Uint8Array(Math.min(perChunk, count) * es);
    for (let done = 0; done < count; done += perChunk) {
      const n = Math.min(perChunk, count - done);
      const view = scratch.subarray(0, n * es);
      this.read(fd, view, position + done * es);
      decode(dtype, view, 0, n, out, at + done);
    }
  }

  private plan(name: string, entry: TensorEntry, slice: WeightSlice | undefined) {
    const { shape } = entry;
    const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
    if (!slice) return { outer: 1, size: 1, inner: count(shape), start: 0, length: 1 };
    const { dim, start, length } = slice;
    const size = shape[dim];
    const ok = (v: number) => Number.isSafeInteger(v) && v >= 0;
    if (size === undefined || !ok(dim) || !ok(start) || !ok(length) || start + length > size) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `${this.path}: tensor '${name}' of shape [${shape.join(', ')}] has no slice {dim: ${dim}, start: ${start}, length: ${length}}`,
        {
          where: `${this.path} '${name}'`,
          fix: 'ask for a range inside the tensor: 0 <= start, start + length <= shape[dim]',
        },
      );
    }
    return { outer: count(shape.slice(0, dim)), size, inner: count(shape.slice(dim + 1)), start, length };
  }

  private openFd(name: string): number {
    if (this.fd === null) {
      throw new ParallelError('DESTROYED', `${this.path}: read of '${name}' after the file was closed`, {
        where: this.path,
        fix: 'open the file again (SafetensorsFile.open) or read before close()',
      });
    }
    return this.fd;
  }

  private entry(name: string): TensorEntry {
    const entry = this.header.tensors.get(name);
    if (!entry) {
      throw checkpointError(
        this.path,
        `no such tensor${closeNamesHint(name, this.names())}`,
        name,
        'check the tensor name against the file (SafetensorsFile.names())',
      );
    }
    return entry;
  }
}
