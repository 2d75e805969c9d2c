import type { LlamaConfig } from '../models/llama-config.js';
import { llamaParameterShapes, preset, presetNames, randomLlamaWeights } from '../models/preset-configs.js';
import { MemoryWeights, type WeightReader } from '../parallel/weight-reader.js';
import { checkpointSource } from './checkpoint-source.js';
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
 * downloaded) or a checkpoint folder (relative to `baseDir`, the strategy file's folder; read by
 * checkpoint-source.ts, which the browser build swaps for a finding). A source that cannot be used is a
 * finding at `$.model`.
 */
export function resolveModelSource(
  strategy: ModelStrategy,
  baseDir?: string,
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
  return checkpointSource(checkpoint!, baseDir);
}
