import { ParallelError } from '../../errors.js';
import type { WeightReader } from '../../parallel/weight-reader.js';
import type { CheckpointTensor, CheckpointWriteOptions } from './checkpoint.js';
import type { TensorInfo } from './safetensors.js';

export type { CheckpointTensor, CheckpointWriteOptions } from './checkpoint.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

function noFileSystem(dir: string): ParallelError {
  return new ParallelError(
    'IO',
    `cannot open the checkpoint ${dir} in the browser: a page has no file system`,
    {
      where: dir,
      fix: 'load checkpoints under Node (the CLI or the library); in the page use a preset',
    },
  );
}

/**
 * The page's twin of checkpoint.ts: checkpoints are folders of files, which a page cannot open, so `open`
 * and `write` fail with IO and no instance ever exists (the instance methods only satisfy WeightReader).
 */
export class Checkpoint implements WeightReader {
  private constructor() {}

  static open(dir: string): Checkpoint {
    throw noFileSystem(dir);
  }

  static write(
    dir: string,
    _tensors: Readonly<Record<string, CheckpointTensor>>,
    _options: CheckpointWriteOptions,
  ): void {
    throw noFileSystem(dir);
  }

  get bytesRead(): number {
    return 0;
  }

  names(): string[] {
    return [];
  }

  has(_name: string): boolean {
    return false;
  }

  info(name: string): TensorInfo {
    throw noFileSystem(name);
  }

  readF32(name: string): Float32Array {
    throw noFileSystem(name);
  }

  close(): void {}
}
