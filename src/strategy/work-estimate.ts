import { tokensPerMicrobatch } from './memory-estimate.js';
import type { StagePlan } from './model-plan.js';
import type { Strategy } from './schema.js';
import { chainKind } from './stages/registry.js';

/** Floating-point operations one device does for one microbatch of one stage (a matmul counts 2·M·N·K). */
export function stageFlops(strategy: Strategy, plan: StagePlan, rank: number): number {
  return chainKind(plan.kind).flops(plan, rank, tokensPerMicrobatch(strategy), strategy.model.seq_len);
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
