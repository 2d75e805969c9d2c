import { makeRandom } from '../random.js';
import type { StagePlan } from './model-plan.js';
import type { Strategy } from './schema.js';
import type { ReferenceState, StageWeights } from './stages/kind.js';
import { chainKind } from './stages/registry.js';

export { LAYER_NORM_EPS } from './stages/aggregation.js';
export type { StageWeights } from './stages/kind.js';

/** Random weights, each kind's own (linear weights scaled by 1/sqrt(fan-in), so activations stay of order one). */
export function randomWeights(plans: readonly StagePlan[], seed: number): StageWeights[] {
  const random = makeRandom(seed);
  return plans.map((plan) => chainKind(plan.kind).randomWeights(plan, random));
}

/** Token ids of every microbatch: [sequences * seq_len] each, deterministic from the seed. */
export function randomIds(strategy: Strategy, microbatches: number, seed: number): Uint32Array[] {
  const random = makeRandom(seed ^ 0x9e3779b9);
  const tokens = (strategy.batch.batch_size / microbatches) * strategy.model.seq_len;
  return Array.from({ length: microbatches }, () =>
    Uint32Array.from({ length: tokens }, () => Math.floor(random() * strategy.model.vocab_size)),
  );
}

/**
 * The whole model on one host, unsharded, with the reference kernels: what every sharded run is compared
 * with. Each stage's kind gives its own reference.
 */
export function referenceForward(
  plans: readonly StagePlan[],
  weights: readonly StageWeights[],
  ids: Uint32Array,
  seqLen: number,
): Float32Array {
  let state: ReferenceState = { x: new Float32Array(0), rows: ids.length, ids, seqLen };
  plans.forEach((plan, i) => {
    state = chainKind(plan.kind).reference(plan, weights[i]!, state);
  });
  return state.x;
}
