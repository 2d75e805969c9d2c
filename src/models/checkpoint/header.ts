import { fstatSync } from 'node:fs';
import { ParallelError } from '../../errors.js';
import { readFully } from './read-bytes.js';

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** One tensor of the header, its offsets relative to the start of the data section. */
export interface TensorEntry {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface ParsedHeader {
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

const FIX =
  're-export the checkpoint (e.g. with safetensors.torch.save_file); this file is damaged or not safetensors';

export function checkpointError(file: string, message: string, tensor?: string, fix = FIX): ParallelError {
  const what = tensor === undefined ? '' : ` tensor '${tensor}':`;
  return new ParallelError('CHECKPOINT', `${file}:${what} ${message}`, {
    where: tensor === undefined ? file : `${file} '${tensor}'`,
    fix,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (!isRecord(value)) throw checkpointError(file, '"__metadata__" must be an object of strings');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw checkpointError(file, `"__metadata__"."${key}" must be a string, got ${JSON.stringify(v)}`);
    }
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown, file: string, dataBytes: number): TensorEntry {
  if (!isRecord(value))
    throw checkpointError(file, 'entry must be an object {dtype, shape, data_offsets}', name);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw checkpointError(
      file,
      `unknown dtype ${JSON.stringify(dtype)}; supported: ${Object.keys(DTYPE_BYTES).join(', ')}`,
      name,
      'convert the tensor to F32, F16 or BF16 before saving',
    );
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw checkpointError(
      file,
      `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      name,
    );
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw checkpointError(
      file,
      `data_offsets must be [begin, end] integers, got ${JSON.stringify(offsets)}`,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw checkpointError(file, `data_offsets [${begin}, ${end}] begin after end`, name);
  if (end > dataBytes) {
    throw checkpointError(
      file,
      `data_offsets [${begin}, ${end}] run past the data section's ${dataBytes} bytes (file truncated?)`,
      name,
    );
  }
  const size = DTYPE_BYTES[dtype as SafetensorsDtype];
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  if (end - begin !== elements * size) {
    throw checkpointError(
      file,
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${elements * size}`,
      name,
    );
  }
  return { dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end };
}

/** Two tensors sharing bytes means a corrupt (or hand-edited) header; empty tensors share nothing. */
function checkOverlaps(tensors: ReadonlyMap<string, TensorEntry>, file: string): void {
  const ranges = [...tensors].filter(([, t]) => t.end > t.begin).sort(([, a], [, b]) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const [prevName, prev] = ranges[i - 1]!;
    const [name, entry] = ranges[i]!;
    if (entry.begin < prev.end) {
      throw checkpointError(
        file,
        `bytes [${entry.begin}, ${entry.end}] overlap tensor '${prevName}' at [${prev.begin}, ${prev.end}]`,
        name,
      );
    }
  }
}

/** Parses and checks a header's JSON against a data section of `dataBytes` bytes. */
export function parseHeader(text: string, file: string, dataBytes: number): ParsedHeader {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw checkpointError(file, `header is not JSON (${(cause as Error).message})`);
  }
  if (!isRecord(json)) throw checkpointError(file, 'header must be a JSON object of tensors');
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(value, file);
    else tensors.set(name, parseEntry(name, value, file, dataBytes));
  }
  checkOverlaps(tensors, file);
  return { tensors, metadata };
}

/** The format caps headers at 100 MB; a larger length is a corrupt file, not a reason to allocate it. */
const MAX_HEADER_BYTES = 100_000_000;

/** Reads and checks the header of the open file `fd`; the data section starts at `dataStart`. */
export function readHeader(fd: number, path: string): { header: ParsedHeader; dataStart: number } {
  const size = fstatSync(fd).size;
  if (size < 8) throw checkpointError(path, `file is ${size} bytes, too short for the 8-byte header length`);
  const prefix = new Uint8Array(8);
  readFully(fd, prefix, 0, path);
  const length = new DataView(prefix.buffer).getBigUint64(0, true);
  if (length > BigInt(size - 8)) {
    throw checkpointError(path, `header length ${length} runs past the end of the ${size}-byte file`);
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw checkpointError(path, `header length ${length} is over the format's ${MAX_HEADER_BYTES}-byte cap`);
  }
  const headerBytes = new Uint8Array(Number(length));
  readFully(fd, headerBytes, 8, path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw checkpointError(path, 'header is not UTF-8 text');
  }
  return { header: parseHeader(text, path, size - 8 - Number(length)), dataStart: 8 + Number(length) };
}
