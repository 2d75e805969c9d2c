import { tokensPerMicrobatch } from './memory-estimate.js';
import { type StagePlan, shardSize } from './model-plan.js';
import type { Strategy } from './schema.js';

/** Floating-point operations one device does for one microbatch of one stage (a matmul counts 2·M·N·K). */
export function stageFlops(strategy: Strategy, plan: StagePlan, rank: number): number {
  const tokens = tokensPerMicrobatch(strategy);
  const shard = shardSize(plan, rank);
  switch (plan.kind) {
    case 'embedding':
      // A gather: one read and one write per output element; counted so a device with only lookups is not 0.
      return tokens * (plan.mode === 'column' ? shard : plan.outFeatures);
    case 'linear':
      return (
        2 *
        tokens *
        plan.inFeatures *
        plan.outFeatures *
        (shard / (plan.mode === 'column' ? plan.outFeatures : plan.inFeatures))
      );
    case 'aggregation': {
      const sequences = tokens / strategy.model.seq_len;
      // Replicas take microbatches in turn: each does 1/replicas of them.
      const share = plan.mode === 'replicas' ? 1 / plan.devices.length : 1;
      return share * (tokens * plan.inFeatures + 2 * sequences * plan.inFeatures * plan.outFeatures);
    }
  }
}

/** Estimated work per device per microbatch, from the plan alone (the run measures the real figure). */
export function estimateWork(strategy: Strategy, plans: readonly StagePlan[]): number[] {
  const work = Array.from({ length: strategy.hardware.device_count }, () => 0);
  for (const plan of plans) {
    plan.devices.forEach((d, rank) => {
      work[d]! += stageFlops(strategy, plan, rank);
    });
  }
  return work;
}
