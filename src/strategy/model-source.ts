import { isAbsolute, resolve } from 'node:path';
import { isParallelError } from '../errors.js';
import { Checkpoint } from '../models/checkpoint/checkpoint.js';
import { type LlamaConfig, readLlamaConfig } from '../models/llama-config.js';
import { llamaParameterShapes, preset, presetNames, randomLlamaWeights } from '../models/presets.js';
import { MemoryWeights, type WeightReader } from '../parallel/weight-reader.js';
import type { Finding } from './findings.js';
import type { ModelStrategy } from './schema.js';

/** Where a model strategy's model comes from: its shape now, its weights when the run opens them. */
export interface ModelSource {
  readonly config: LlamaConfig;
  /** "preset llama-small (random weights, seed 1)", "checkpoint /models/x". */
  readonly description: string;
  /** The weights by Hugging Face name; `close` when the load is done. */
  open(): { readonly reader: WeightReader; close(): void };
}

/**
 * The model a strategy names: an embedded preset (random weights from the strategy's seed: nothing is
 * downloaded) or a checkpoint folder (relative to `baseDir`, the strategy file's folder). A source that
 * cannot be used is a finding at `$.model`.
 */
export function resolveModelSource(
  strategy: ModelStrategy,
  baseDir: string,
): { source: ModelSource | null; findings: Finding[] } {
  const { preset: name, checkpoint } = strategy.model;
  if ((name === undefined) === (checkpoint === undefined)) {
    return {
      source: null,
      findings: [
        {
          code: 'MODEL_SOURCE',
          severity: 'error',
          path: '$.model',
          message: 'a model strategy names exactly one of model.preset and model.checkpoint',
          fix: `keep one of them (presets: ${presetNames().join(', ')})`,
        },
      ],
    };
  }
  const seed = strategy.seed ?? 1;
  if (name !== undefined) {
    if (!presetNames().includes(name)) {
      return {
        source: null,
        findings: [
          {
            code: 'MODEL_PRESET',
            severity: 'error',
            path: '$.model.preset',
            message: `no model preset '${name}'`,
            fix: `use one of ${presetNames().join(', ')}`,
          },
        ],
      };
    }
    const config = preset(name);
    return {
      source: {
        config,
        description: `preset ${name} (random weights, seed ${seed})`,
        open: () => {
          const tensors = randomLlamaWeights(config, seed);
          const shapes = Object.fromEntries(llamaParameterShapes(config).map((p) => [p.name, p.shape]));
          return { reader: new MemoryWeights(tensors, shapes), close: () => {} };
        },
      },
      findings: [],
    };
  }
  const dir = isAbsolute(checkpoint!) ? checkpoint! : resolve(baseDir, checkpoint!);
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
