import type { z } from 'zod';
import type { CollectiveContext } from '../../collectives/context.js';
import type { DistributedTensor, Placement } from '../../collectives/layout.js';
import type { DeviceGroup } from '../../runtime/device-group.js';
import type { Finding } from '../findings.js';
import type { PipelineStage, PlacementKind, StagePlan } from '../model-plan.js';
import type { ChainStrategy, StageSpec } from '../schema.js';

/** The full (unsharded) weights of one stage, on the host; which arrays a kind uses is its own choice. */
export interface StageWeights {
  readonly w: Float32Array;
  readonly b?: Float32Array;
  readonly gamma?: Float32Array;
  readonly beta?: Float32Array;
}

/**
 * One pipeline element's compute, on real devices: what the executor runs for each microbatch. The
 * executor tags each device's kernels with the stage's name before calling it; a runtime never tags.
 */
export interface StageRuntime {
  /** The devices that run microbatch `mb`: the whole group, or one data-parallel replica in turn. */
  groupFor(microbatch: number): DeviceGroup;
  /** The layout this stage reads its input in, on `groupFor(mb)`; a communication delivers it so. */
  inputPlacement(): Placement;
  /**
   * Queues the stage's kernels for one microbatch: the first stage reads its own input (`input` null).
   * A DistributedTensor goes on to the next element; the last stage may give its result on the host.
   */
  forward(input: DistributedTensor | null, microbatch: number): Promise<DistributedTensor | Float32Array>;
  /**
   * Work this stage's output still needs once a communication has summed it on the consumer's devices (a
   * row-parallel layer's bias, added once after the sum). Called on the consumer's lane, under its tag.
   */
  finishTransfer?(summed: DistributedTensor): Promise<DistributedTensor>;
  destroy(): void;
}

/** What a kind's `build` gets besides its plan, group and weights. */
export interface BuildContext {
  readonly ctx: CollectiveContext;
  /** The token ids of every microbatch ([sequences * seq_len] each): what a first stage reads. */
  readonly ids: readonly Uint32Array[];
  readonly seqLen: number;
}

/** The activations flowing through the reference forward: rows of `width` values. */
export interface ReferenceState {
  readonly x: Float32Array;
  readonly rows: number;
  readonly ids: Uint32Array;
  readonly seqLen: number;
}

/** Widths per device of what a stage reads and writes per row, for the memory estimate. */
export interface ActivationWidths {
  readonly input: number;
  readonly output: number;
  readonly outputRows: 'tokens' | 'sequences';
}

/** The sizes a stage's kind works out from its spec and the width of the rows reaching it. */
export interface KindShape {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Placements the stage can read its input in, on its own devices. */
  readonly accepts: readonly PlacementKind[];
}

/**
 * A stage kind of the seed's chain models: everything about it in one place, registered once in
 * `registry.ts`. The runner, the validator, the estimates, the weights file and the reference all ask
 * the kind; a new kind is a file that implements this, plus its tests.
 */
export interface ChainStageKind {
  /** The canonical name, as plans carry it. */
  readonly kind: string;
  /** The spellings a strategy file may use for it (`expert` is a linear stage in the seed's words). */
  readonly names: readonly string[];
  /** This kind's own fields of a stage object, beside the common ones; optional, as zod fields. */
  readonly fields: z.ZodRawShape;
  /** It reads token ids, so it must come first; it makes the final output, so it must come last. */
  readonly readsIds?: boolean;
  readonly final?: boolean;
  /** Its widths, given the width of the rows reaching it, and the layouts it reads. */
  shape(spec: StageSpec, strategy: ChainStrategy, width: number): KindShape;
  /** Findings about fields this kind cannot take (a split it cannot do, a misplaced activation). */
  check(spec: StageSpec, path: string, add: (f: Finding) => void): void;
  /** The model field a split of this stage divides, for messages ('hidden_size', 'out_features', ...). */
  splitDimName(plan: StagePlan): string;
  weightBytes(plan: StagePlan, rank: number): number;
  activationWidths(plan: StagePlan, rank: number): ActivationWidths;
  /** Floating-point operations of the device at `rank` for one microbatch of `tokens` tokens. */
  flops(plan: StagePlan, rank: number, tokens: number, seqLen: number): number;
  /** The arrays of its weights file entry and their lengths (W [in, out] row-major first). */
  weightLengths(plan: StagePlan): Record<string, number>;
  randomWeights(plan: StagePlan, random: () => number): StageWeights;
  /** The stage, unsharded, with the float64-accumulating reference kernels. */
  reference(plan: StagePlan, weights: StageWeights, state: ReferenceState): ReferenceState;
  /** The stage on its devices, built from the library's parallel modules. */
  build(plan: StagePlan, group: DeviceGroup, weights: StageWeights, env: BuildContext): StageRuntime;
}

/** Uniform values in [-scale, scale), drawn in order from `random`. */
export function uniform(n: number, scale: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}

export const F32 = 4;

/** The size of the split dim the device at `rank` holds (the whole dim when the stage is not split). */
export function shardSize(plan: PipelineStage, rank: number): number {
  return plan.shardSizes[rank] ?? plan.shardSizes[0]!;
}
