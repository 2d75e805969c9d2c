import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParallelError } from '../errors.js';
import { Checkpoint, INDEX_FILE, SINGLE_FILE } from './checkpoint/checkpoint.js';
import { type LlamaConfig, toHfConfig } from './llama-config.js';
import { llamaParameterShapes, randomLlamaWeights } from './preset-configs.js';

// The presets themselves need no file system (the browser build reads them there); this file writes them out.
export * from './preset-configs.js';

export interface RandomCheckpointOptions {
  readonly seed: number;
  readonly dtype: 'F32' | 'F16' | 'BF16';
  /** Split the weights into files of about this size, with an index. */
  readonly shardBytes?: number;
  /** Replace a checkpoint already in the folder. */
  readonly overwrite?: boolean;
}

/** Safetensors files a previous checkpoint may have left, which would shadow (or mix with) the new one. */
function removeOldWeights(dir: string): void {
  for (const file of readdirSync(dir)) {
    if (file === SINGLE_FILE || file === INDEX_FILE || /^model-\d+-of-\d+\.safetensors$/.test(file)) {
      rmSync(join(dir, file));
    }
  }
}

/** Writes a random checkpoint folder of `config`: config.json plus safetensors weights. */
export function writeRandomCheckpoint(
  dir: string,
  config: LlamaConfig,
  options: RandomCheckpointOptions,
): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) {
      throw new ParallelError('IO', `${dir} exists and is not a folder`, {
        where: dir,
        fix: 'choose another path',
      });
    }
    if (existsSync(join(dir, 'config.json')) && !options.overwrite) {
      throw new ParallelError('INVALID_ARGUMENT', `${dir} already holds a checkpoint (config.json)`, {
        where: dir,
        fix: 'choose an empty folder, or remove the old checkpoint first',
      });
    }
    if (options.overwrite) removeOldWeights(dir);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (cause) {
    throw new ParallelError('IO', `cannot create ${dir}: ${(cause as Error).message}`, { where: dir, cause });
  }
  const weights = randomLlamaWeights(config, options.seed);
  const tensors = Object.fromEntries(
    llamaParameterShapes(config).map(({ name, shape }) => [name, { shape, data: weights[name]! }]),
  );
  Checkpoint.write(dir, tensors, { dtype: options.dtype, shardBytes: options.shardBytes });
  // config.json last: a folder left by a failed write is not mistaken for a checkpoint, nor refused later.
  const configPath = join(dir, 'config.json');
  const tmp = `${configPath}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(toHfConfig(config), null, 2)}\n`);
    renameSync(tmp, configPath);
  } catch (cause) {
    throw new ParallelError('IO', `cannot write ${configPath}: ${(cause as Error).message}`, {
      where: configPath,
      cause,
    });
  }
}
