import { ParallelError } from '../errors.js';
import { makeRandom } from '../random.js';
import type { LlamaConfig } from './llama-config.js';

const tiny: LlamaConfig = {
  vocabSize: 96,
  hiddenSize: 48,
  intermediateSize: 80,
  numLayers: 2,
  numHeads: 6,
  numKvHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositions: 128,
  tieWordEmbeddings: false,
};

/** Shapes for tests (tiny: every split is uneven somewhere) and benches (small, 1024: real kernel sizes). */
const PRESETS: Readonly<Record<string, LlamaConfig>> = {
  'llama-tiny': tiny,
  'llama-tiny-tied': { ...tiny, tieWordEmbeddings: true },
  'llama-small': {
    ...tiny,
    vocabSize: 8192,
    hiddenSize: 512,
    intermediateSize: 1376,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    maxPositions: 1024,
  },
  'llama-1024': {
    ...tiny,
    vocabSize: 8192,
    hiddenSize: 1024,
    intermediateSize: 2752,
    numLayers: 4,
    numHeads: 16,
    numKvHeads: 4,
    headDim: 64,
    maxPositions: 1024,
  },
  'mixtral-tiny': { ...tiny, numExperts: 4, expertsPerToken: 2 },
  // Mixtral's shape (8 experts, top-2) at llama-small's width, experts narrower: 26 MiB of experts a layer.
  'mixtral-small': {
    ...tiny,
    vocabSize: 8192,
    hiddenSize: 512,
    intermediateSize: 512,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    maxPositions: 1024,
    numExperts: 8,
    expertsPerToken: 2,
  },
};

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function preset(name: string): LlamaConfig {
  const config = PRESETS[name];
  if (!config) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `no model preset '${name}'; presets: ${presetNames().join(', ')}`,
      {
        where: 'preset',
        fix: `use one of ${presetNames().join(', ')}`,
      },
    );
  }
  return { ...config };
}

export interface ParameterShape {
  readonly name: string;
  readonly shape: number[];
}

/** Every parameter by Hugging Face name, in Hugging Face layout (a linear weight is [out, in]). */
export function llamaParameterShapes(config: LlamaConfig): ParameterShape[] {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, headDim: hd } = config;
  const shapes: ParameterShape[] = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  for (let n = 0; n < config.numLayers; n++) {
    const p = `model.layers.${n}`;
    shapes.push(
      { name: `${p}.input_layernorm.weight`, shape: [H] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [config.numHeads * hd, H] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [config.numKvHeads * hd, H] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [config.numKvHeads * hd, H] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [H, config.numHeads * hd] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [H] },
    );
    if (config.numExperts === undefined) {
      shapes.push(
        { name: `${p}.mlp.gate_proj.weight`, shape: [I, H] },
        { name: `${p}.mlp.up_proj.weight`, shape: [I, H] },
        { name: `${p}.mlp.down_proj.weight`, shape: [H, I] },
      );
      continue;
    }
    shapes.push({ name: `${p}.block_sparse_moe.gate.weight`, shape: [config.numExperts, H] });
    for (let e = 0; e < config.numExperts; e++) {
      const x = `${p}.block_sparse_moe.experts.${e}`;
      shapes.push(
        { name: `${x}.w1.weight`, shape: [I, H] },
        { name: `${x}.w3.weight`, shape: [I, H] },
        { name: `${x}.w2.weight`, shape: [H, I] },
      );
    }
  }
  shapes.push({ name: 'model.norm.weight', shape: [H] });
  if (!config.tieWordEmbeddings) shapes.push({ name: 'lm_head.weight', shape: [V, H] });
  return shapes;
}

/** A seed of its own for each tensor, so adding a layer never changes the values of the others. */
function streamSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

/**
 * Deterministic random weights at the scales a trained model has: norms near 1 (1 ± 0.1), linear weights
 * uniform in ±1/sqrt(fan_in) so activations keep their size, embeddings uniform in ±0.5.
 */
export function randomLlamaWeights(config: LlamaConfig, seed: number): Record<string, Float32Array> {
  const weights: Record<string, Float32Array> = {};
  llamaParameterShapes(config).forEach(({ name, shape }, index) => {
    const random = makeRandom(streamSeed(seed, index));
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const isNorm = shape.length === 1;
    const bound = name === 'model.embed_tokens.weight' ? 0.5 : isNorm ? 0.1 : 1 / Math.sqrt(shape[1]!);
    const center = isNorm ? 1 : 0;
    for (let i = 0; i < data.length; i++) data[i] = center + (2 * random() - 1) * bound;
    weights[name] = data;
  });
  return weights;
}
