import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { ParallelError } from '../../errors.js';
import type { WeightReader, WeightSlice } from '../../parallel/weight-reader.js';
import { closeNamesHint } from './close-names.js';
import { checkpointError, DTYPE_BYTES } from './header.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';
import { writeSafetensors } from './write.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface CheckpointTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface CheckpointWriteOptions {
  readonly dtype: 'F32' | 'F16' | 'BF16';
  /** Split into files of at most about this many bytes (a tensor is never split), with an index. */
  readonly shardBytes?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `{tensor: file}` from a Hugging Face index, every listed file checked to exist (opened only when read). */
function readWeightMap(dir: string, indexPath: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (cause) {
    if (!(cause instanceof SyntaxError)) {
      throw new ParallelError('IO', `cannot read ${indexPath}: ${(cause as Error).message}`, {
        where: indexPath,
        cause,
      });
    }
    throw checkpointError(indexPath, `is not JSON (${cause.message})`, undefined, 'rewrite the index file');
  }
  const weightMap = isRecord(json) ? json.weight_map : undefined;
  if (!isRecord(weightMap)) {
    throw checkpointError(
      indexPath,
      '$.weight_map must be an object {tensor name: file name}',
      undefined,
      'a Hugging Face index looks like {"metadata": {...}, "weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}',
    );
  }
  const map = new Map<string, string>();
  const present = new Set<string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    const path = `$.weight_map["${tensor}"]`;
    if (typeof file !== 'string' || file === '' || isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
      throw checkpointError(
        indexPath,
        `${path} must be a file name inside the folder, got ${JSON.stringify(file)}`,
      );
    }
    if (!present.has(file)) {
      if (!existsSync(join(dir, file))) {
        throw checkpointError(
          indexPath,
          `${path} names '${file}', which is not in ${dir}`,
          undefined,
          'copy every shard the index lists into the folder',
        );
      }
      present.add(file);
    }
    map.set(tensor, file);
  }
  return map;
}

/**
 * A checkpoint folder: one `model.safetensors`, or shards listed by `model.safetensors.index.json`. Shards
 * are opened the first time one of their tensors is read, so a device loading one stage touches only the
 * files that stage needs.
 */
export class Checkpoint implements WeightReader {
  private readonly files = new Map<string, SafetensorsFile>();
  private closed = false;

  private constructor(
    readonly dir: string,
    /** The index file, or the single file: what an error about a missing tensor points at. */
    private readonly source: string,
    private readonly weightMap: ReadonlyMap<string, string>,
  ) {}

  static open(dir: string): Checkpoint {
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(indexPath)) return new Checkpoint(dir, indexPath, readWeightMap(dir, indexPath));
    const single = join(dir, SINGLE_FILE);
    if (existsSync(single)) {
      const file = SafetensorsFile.open(single);
      const checkpoint = new Checkpoint(dir, single, new Map(file.names().map((n) => [n, SINGLE_FILE])));
      checkpoint.files.set(SINGLE_FILE, file);
      return checkpoint;
    }
    const what = existsSync(dir) && statSync(dir).isDirectory() ? 'holds neither' : 'is not a folder with';
    throw new ParallelError('CHECKPOINT', `${dir} ${what} ${SINGLE_FILE} nor ${INDEX_FILE}`, {
      where: dir,
      fix: 'point at a Hugging Face model folder, or write one with `webgpu-parallel make-model`',
    });
  }

  /** Bytes read from tensor data so far, over every shard: what loading really cost. */
  get bytesRead(): number {
    let total = 0;
    for (const file of this.files.values()) total += file.bytesRead;
    return total;
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  readF32(name: string, slice?: WeightSlice, out?: Float32Array): Float32Array {
    return this.fileOf(name).readF32(name, slice, out);
  }

  close(): void {
    for (const file of this.files.values()) file.close();
    this.files.clear();
    this.closed = true;
  }

  private fileOf(name: string): SafetensorsFile {
    if (this.closed) {
      throw new ParallelError('DESTROYED', `${this.dir}: read of '${name}' after the checkpoint was closed`, {
        where: this.dir,
        fix: 'open the checkpoint again',
      });
    }
    const fileName = this.weightMap.get(name);
    if (fileName === undefined) {
      throw checkpointError(
        this.source,
        `no such tensor in the checkpoint${closeNamesHint(name, this.names())}`,
        name,
        'check that the model architecture matches these weights',
      );
    }
    let file = this.files.get(fileName);
    if (!file) {
      const opened = SafetensorsFile.open(join(this.dir, fileName));
      // A shard that lacks a tensor the index promises is a broken download; say so where it is first seen.
      for (const [tensor, owner] of this.weightMap) {
        if (owner === fileName && !opened.has(tensor)) {
          opened.close();
          throw checkpointError(
            this.source,
            `$.weight_map lists it in '${fileName}', which has no such tensor`,
            tensor,
            're-download that shard, or fix the index',
          );
        }
      }
      this.files.set(fileName, opened);
      file = opened;
    }
    return file;
  }

  /** Writes `tensors` as a checkpoint folder (created if needed): one file, or shards plus an index. */
  static write(
    dir: string,
    tensors: Readonly<Record<string, CheckpointTensor>>,
    options: CheckpointWriteOptions,
  ): void {
    const { dtype, shardBytes } = options;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (cause) {
      throw new ParallelError('IO', `cannot create ${dir}: ${(cause as Error).message}`, {
        where: dir,
        cause,
      });
    }
    const metadata = { format: 'pt' };
    const withDtype = (name: string) => ({ ...tensors[name]!, dtype });
    if (shardBytes === undefined) {
      writeSafetensors(
        join(dir, SINGLE_FILE),
        Object.fromEntries(Object.keys(tensors).map((n) => [n, withDtype(n)])),
        metadata,
      );
      return;
    }
    if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `shard size must be a positive number of bytes, got ${shardBytes}`,
        {
          where: 'shardBytes',
        },
      );
    }
    const shards: string[][] = [];
    let used = 0;
    let total = 0;
    for (const name of Object.keys(tensors).sort()) {
      const bytes = tensors[name]!.data.length * DTYPE_BYTES[dtype];
      const last = shards.at(-1);
      if (last && used + bytes <= shardBytes) last.push(name);
      else {
        shards.push([name]);
        used = 0;
      }
      used += bytes;
      total += bytes;
    }
    const pad = (n: number) => String(n).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    shards.forEach((names, k) => {
      const file = `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`;
      writeSafetensors(join(dir, file), Object.fromEntries(names.map((n) => [n, withDtype(n)])), metadata);
      for (const n of names) weightMap[n] = file;
    });
    // The index goes last and atomically: until it exists the folder does not claim to be a checkpoint.
    const indexPath = join(dir, INDEX_FILE);
    const tmp = `${indexPath}.tmp-${process.pid}`;
    try {
      writeFileSync(
        tmp,
        `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
      );
      renameSync(tmp, indexPath);
    } catch (cause) {
      throw new ParallelError('IO', `cannot write ${indexPath}: ${(cause as Error).message}`, {
        where: indexPath,
        cause,
      });
    }
  }
}
