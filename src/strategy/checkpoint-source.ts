import { isAbsolute, resolve } from 'node:path';
import { isParallelError } from '../errors.js';
import { Checkpoint } from '../models/checkpoint/checkpoint.js';
import { readLlamaConfig } from '../models/llama-config.js';
import type { Finding } from './findings.js';
import type { ModelSource } from './model-source.js';

/**
 * A checkpoint folder a model strategy names (relative to `baseDir`, the strategy file's folder; the working
 * directory when absent), read from the file system. A folder that cannot be used is a finding.
 */
export function checkpointSource(
  checkpoint: string,
  baseDir: string | undefined,
): { source: ModelSource | null; findings: Finding[] } {
  const dir = isAbsolute(checkpoint) ? checkpoint : resolve(baseDir ?? process.cwd(), checkpoint);
  try {
    const config = readLlamaConfig(dir);
    return {
      source: {
        config,
        description: `checkpoint ${dir}`,
        open: () => {
          const opened = Checkpoint.open(dir);
          return { reader: opened, close: () => opened.close() };
        },
      },
      findings: [],
    };
  } catch (error) {
    if (!isParallelError(error)) throw error;
    return {
      source: null,
      findings: [
        {
          code: 'MODEL_CHECKPOINT',
          severity: 'error',
          path: '$.model.checkpoint',
          message: `the checkpoint cannot be read: ${error.message}${error.where ? ` (${error.where})` : ''}`,
          fix: error.fix ?? 'point at a Hugging Face model folder (config.json + safetensors)',
        },
      ],
    };
  }
}
