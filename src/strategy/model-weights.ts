import {
  embeddingRef,
  layerNormRef,
  matmulRef,
  meanRowsRef,
  softmaxRef,
} from '../kernels/reference/reference-ops.js';
import { makeRandom } from '../random.js';
import type { StagePlan } from './model-plan.js';
import type { Strategy } from './schema.js';

/** The full (unsharded) weights of one stage, on the host. */
export interface StageWeights {
  readonly w: Float32Array;
  readonly b?: Float32Array;
  readonly gamma?: Float32Array;
  readonly beta?: Float32Array;
}

function uniform(n: number, scale: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

/** Random weights scaled by 1/sqrt(fan-in), so activations stay of order one through the stages. */
export function randomWeights(plans: readonly StagePlan[], seed: number): StageWeights[] {
  const random = makeRandom(seed);
  return plans.map((plan) => {
    const fanIn = plan.kind === 'embedding' ? 1 : plan.inFeatures;
    const scale = 1 / Math.sqrt(fanIn);
    const w = uniform(plan.inFeatures * plan.outFeatures, scale, random);
    if (plan.kind === 'embedding') return { w };
    const b = uniform(plan.outFeatures, 0.1, random);
    if (plan.kind === 'linear') return { w, b };
    return {
      w,
      b,
      gamma: uniform(plan.inFeatures, 0.5, random).map((x) => 1 + x),
      beta: uniform(plan.inFeatures, 0.1, random),
    };
  });
}

/** Token ids of every microbatch: [sequences * seq_len] each, deterministic from the seed. */
export function randomIds(strategy: Strategy, microbatches: number, seed: number): Uint32Array[] {
  const random = makeRandom(seed ^ 0x9e3779b9);
  const tokens = (strategy.batch.batch_size / microbatches) * strategy.model.seq_len;
  return Array.from({ length: microbatches }, () =>
    Uint32Array.from({ length: tokens }, () => Math.floor(random() * strategy.model.vocab_size)),
  );
}

export const LAYER_NORM_EPS = 1e-5;

/**
 * The whole model on one host, unsharded, with the reference kernels: what every sharded run is compared
 * with. Aggregation = mean over each sequence, layer norm, output projection, softmax.
 */
export function referenceForward(
  plans: readonly StagePlan[],
  weights: readonly StageWeights[],
  ids: Uint32Array,
  seqLen: number,
): Float32Array {
  let x: Float32Array = new Float32Array(0);
  let rows = ids.length;
  plans.forEach((plan, i) => {
    const w = weights[i]!;
    if (plan.kind === 'embedding') {
      x = embeddingRef(w.w, plan.outFeatures, plan.inFeatures, ids);
    } else if (plan.kind === 'linear') {
      x = matmulRef(x, w.w, rows, plan.outFeatures, plan.inFeatures, w.b, plan.activation);
    } else {
      const groups = rows / seqLen;
      const mean = meanRowsRef(x, groups, seqLen, plan.inFeatures);
      const normed = layerNormRef(mean, groups, plan.inFeatures, w.gamma!, w.beta!, LAYER_NORM_EPS);
      const logits = matmulRef(normed, w.w, groups, plan.outFeatures, plan.inFeatures, w.b);
      x = softmaxRef(logits, groups, plan.outFeatures);
      rows = groups;
    }
  });
  return x;
}
