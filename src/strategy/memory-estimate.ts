import { COPY_CHUNK_ELEMENTS } from '../collectives/streamed-copy.js';
import { sizeClass } from '../runtime/webgpu/staging-pool.js';
import type { StagePlan } from './model-plan.js';
import { IN_FLIGHT } from './schedule.js';
import type { Strategy } from './schema.js';
import { F32 } from './stages/kind.js';
import { chainKind } from './stages/registry.js';

export interface DeviceMemory {
  readonly device: number;
  readonly weights: number;
  readonly activations: number;
  readonly staging: number;
  /** Model strategies: the KV cache of every sequence of the batch (part of `total`). */
  readonly kvCache?: number;
  readonly total: number;
  /** The largest items, for the finding's message. */
  readonly items: readonly { label: string; bytes: number }[];
}

export function tokensPerMicrobatch(strategy: Strategy): number {
  return Math.ceil(strategy.batch.batch_size / strategy.batch.microbatches) * strategy.model.seq_len;
}

/** Weight bytes of one stage on the device at `rank` of its group. */
export function stageWeightBytes(plan: StagePlan, rank: number): number {
  return chainKind(plan.kind).weightBytes(plan, rank);
}

/** The staging a host transfer of `bytes` holds at once: the pool's size class, two chunks past one. */
function stagingBytes(bytes: number): number {
  const chunk = COPY_CHUNK_ELEMENTS * F32;
  return bytes <= chunk ? sizeClass(bytes) : 2 * sizeClass(chunk);
}

/**
 * What each device must hold to run the strategy: its weight shards, the activations of the microbatches
 * in flight (an input and an output per stage it serves, IN_FLIGHT times over: the executor lets no stage
 * run further ahead of its consumer), and the staging of the host transfers in and out of its stages.
 */
export function estimateMemory(strategy: Strategy, plans: readonly StagePlan[]): DeviceMemory[] {
  const tokens = tokensPerMicrobatch(strategy);
  const sequences = Math.ceil(strategy.batch.batch_size / strategy.batch.microbatches);
  const inFlight = Math.min(IN_FLIGHT, strategy.batch.microbatches);
  const out: DeviceMemory[] = [];
  for (let device = 0; device < strategy.hardware.device_count; device++) {
    const items: { label: string; bytes: number }[] = [];
    let weights = 0;
    let activations = 0;
    let staging = 0;
    for (const plan of plans) {
      const rank = plan.devices.indexOf(device);
      if (rank < 0) continue;
      const w = stageWeightBytes(plan, rank);
      weights += w;
      items.push({ label: `${plan.spec.name} weights`, bytes: w });
      const widths = chainKind(plan.kind).activationWidths(plan, rank);
      const inWidth = widths.input;
      const outWidth = widths.output;
      const outRows = widths.outputRows === 'sequences' ? sequences : tokens;
      const a = (tokens * inWidth + outRows * outWidth) * F32 * inFlight;
      activations += a;
      items.push({ label: `${plan.spec.name} activations (${inFlight} microbatches)`, bytes: a });
      // Its input may arrive through the host while its output leaves through it and another stage's
      // transfer runs: one staging buffer each at once, of the pool's size class, in chunks past one.
      staging += stagingBytes(tokens * inWidth * F32) + stagingBytes(outRows * outWidth * F32);
    }
    items.sort((x, y) => y.bytes - x.bytes);
    out.push({ device, weights, activations, staging, total: weights + activations + staging, items });
  }
  return out;
}
