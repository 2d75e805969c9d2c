import type { LlamaConfig } from '../models/llama-config.js';
import type { DeviceMemory } from './memory-estimate.js';
import type { ModelStrategy } from './schema.js';
import {
  type Allocator,
  type BatchShape,
  decoderFlops,
  decoderMemory,
  type ModelStagePlan,
} from './stages/decoder.js';

export function batchShape(strategy: ModelStrategy): BatchShape {
  return {
    sequences: strategy.batch.batch_size,
    seqLen: strategy.batch.seq_len,
    microbatches: strategy.batch.microbatches,
  };
}

/**
 * What each device must hold to run a model strategy, from the plan: weights, KV cache, activations,
 * staging. Validation assumes the caching allocator (WebGPU's, the larger); a run estimates for its backend.
 */
export function estimateModelMemory(
  strategy: ModelStrategy,
  config: LlamaConfig,
  plans: readonly ModelStagePlan[],
  allocator: Allocator = 'caching',
): DeviceMemory[] {
  const batch = batchShape(strategy);
  return Array.from({ length: strategy.hardware.device_count }, (_, device) => {
    const items: { label: string; bytes: number }[] = [];
    let weights = 0;
    let kvCache = 0;
    let activations = 0;
    let staging = 0;
    for (const plan of plans) {
      const rank = plan.devices.indexOf(device);
      if (rank < 0) continue;
      const m = decoderMemory(plan, config, rank, batch, allocator);
      weights += m.weights;
      kvCache += m.kvCache;
      activations += m.activations;
      staging = Math.max(staging, m.staging);
      const name = plan.spec.name;
      items.push(
        { label: `${name} weights`, bytes: m.weights },
        { label: `${name} KV cache (${batch.sequences} sequences)`, bytes: m.kvCache },
        { label: `${name} activations`, bytes: m.activations },
      );
    }
    items.sort((a, b) => b.bytes - a.bytes);
    return {
      device,
      weights,
      kvCache,
      activations,
      staging,
      total: weights + kvCache + activations + staging,
      items,
    };
  });
}

/** Estimated floating-point operations per device for one microbatch. */
export function estimateModelWork(
  strategy: ModelStrategy,
  config: LlamaConfig,
  plans: readonly ModelStagePlan[],
): number[] {
  const batch = batchShape(strategy);
  const work = Array.from({ length: strategy.hardware.device_count }, () => 0);
  for (const plan of plans) {
    plan.devices.forEach((d, rank) => {
      work[d]! += decoderFlops(plan, config, rank, batch);
    });
  }
  return work;
}
