import { CollectiveContext } from '../../collectives/context.js';
import type { DistributedTensor } from '../../collectives/layout.js';
import { ParallelError } from '../../errors.js';
import type { LayerKv } from '../../parallel/attention.js';
import { ExpertLoad } from '../../parallel/expert-load.js';
import { type Parameter, stateDict } from '../../parallel/module.js';
import { ShardReader } from '../../parallel/shard-reader.js';
import type { WeightReader } from '../../parallel/weight-reader.js';
import { DeviceGroup } from '../../runtime/device-group.js';
import { Checkpoint } from '../checkpoint/checkpoint.js';
import { type LlamaConfig, readLlamaConfig } from '../llama-config.js';
import { runPipeline } from '../pipeline-run.js';
import { gridPlan, type ResolvedStage, resolvePlan, type ShardingPlan } from '../sharding-plan.js';
import type { FeedForward } from './decoder-layer.js';
import { type BatchSequence, LlamaStage, type StageResult, type StageWant } from './stage.js';

export interface LoadOptions {
  /** Stages and their devices; or the grid `--tp T --pp P` over the group's first T·P devices. Default TP=1, PP=1. */
  readonly plan?: ShardingPlan | { readonly tp?: number; readonly pp?: number; readonly ep?: number };
  /** Collective state shared with other work on the same devices; the model makes its own otherwise. */
  readonly ctx?: CollectiveContext;
  /** Builds a layer's feed-forward half instead of Llama's MLP, or of a Mixtral config's experts. */
  readonly feedForward?: (stage: LlamaStage, prefix: string) => FeedForward;
  /**
   * Mixtral: absent, dropless (as its inference is); else each expert takes at most ceil(factor · tokens ·
   * k / experts) assignments per forward, the rest dropped and counted in `expertLoad`.
   */
  readonly capacityFactor?: number;
}

/** One sequence's KV cache over every layer of the model, on the devices of each layer's stage. */
export interface SequenceCache {
  readonly capacity: number;
  readonly layers: readonly LayerKv[];
}

/**
 * A Llama-family causal LM spread over a device group by a sharding plan: pipeline stages over layer
 * ranges, tensor parallel within each (heads, MLP columns and the vocabulary split over the stage's
 * devices). `forward` gives logits; `generate` (see generate.ts) prefills and decodes with a KV cache.
 */
export class LlamaModel implements Disposable {
  readonly stages: readonly LlamaStage[];
  private readonly ownCtx: CollectiveContext | null;
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    readonly group: DeviceGroup,
    stages: readonly LlamaStage[],
    ownCtx: CollectiveContext | null,
    /** Mixtral: the routing counts of every MoE layer's forwards (see ExpertLoad.summary). */
    readonly expertLoad: ExpertLoad | null = null,
  ) {
    this.stages = stages;
    this.ownCtx = ownCtx;
  }

  /** Loads a checkpoint folder (config.json + safetensors), or config and weights given directly. */
  static async load(
    group: DeviceGroup,
    source: string | { readonly config: LlamaConfig; readonly weights: WeightReader },
    options: LoadOptions = {},
  ): Promise<LlamaModel> {
    const checkpoint = typeof source === 'string' ? Checkpoint.open(source) : null;
    try {
      const config = typeof source === 'string' ? readLlamaConfig(source) : source.config;
      // One set of read buffers for the whole load (see ShardReader).
      const reader = ShardReader.of(checkpoint ?? (source as { weights: WeightReader }).weights);
      const plan = resolvePlan(planOf(options.plan, config), config.numLayers, group.size);
      const ctx = options.ctx ?? new CollectiveContext();
      const stages: LlamaStage[] = [];
      const expertLoad = config.numExperts === undefined ? null : new ExpertLoad();
      try {
        plan.forEach((spec: ResolvedStage, s) => {
          const devices = DeviceGroup.of(spec.devices.map((i) => group.devices[i]!));
          const stage = new LlamaStage(ctx, devices, spec, s === 0, s === plan.length - 1, config);
          stages.push(stage);
          stage.load(reader, options.feedForward, {
            capacityFactor: options.capacityFactor,
            load: expertLoad ?? undefined,
            stage: s,
          });
        });
      } catch (error) {
        for (const stage of stages) stage.free();
        if (!options.ctx) ctx.destroy();
        throw error;
      }
      await Promise.all(stages.map((s) => s.group.sync()));
      return new LlamaModel(config, group, stages, options.ctx ? null : ctx, expertLoad);
    } finally {
      checkpoint?.close();
    }
  }

  /** Every parameter by Hugging Face name, as the devices hold it. */
  stateDict(): Map<string, DistributedTensor> {
    return stateDict(this.stages);
  }

  parameters(): Parameter[] {
    return this.stages.flatMap((s) => s.parameters());
  }

  /** Each device's KV-cache bytes for one sequence of `capacity` positions. */
  cacheBytesPerDevice(capacity: number): Map<number, number> {
    const bytes = new Map<number, number>();
    for (const stage of this.stages) {
      stage.cacheBytes(capacity).forEach((b, r) => {
        const id = stage.group.devices[r]!.id;
        bytes.set(id, (bytes.get(id) ?? 0) + b);
      });
    }
    return bytes;
  }

  /** A zeroed KV cache of `capacity` positions for one sequence, on every stage's devices. */
  newCache(capacity: number, label: string): SequenceCache {
    const layers: LayerKv[] = [];
    try {
      for (const stage of this.stages) {
        for (const layer of stage.layers)
          layers.push(layer.attention.newCache(capacity, `${label}.layer${layer.index}`));
      }
    } catch (error) {
      freeCache({ capacity, layers });
      throw error;
    }
    return { capacity, layers };
  }

  /**
   * Logits of every position of every sequence ([length, vocab] each), computed from scratch: the prompt is
   * the whole input, with a KV cache made for it and freed after.
   */
  async forward(
    sequences: readonly (readonly number[] | Uint32Array)[],
    options: { microbatches?: number } = {},
  ) {
    this.assertLive();
    const ids = sequences.map((s) => toIds(s, this.config.vocabSize));
    const caches: SequenceCache[] = [];
    try {
      for (const [i, s] of ids.entries()) caches.push(this.newCache(s.length, `forward${i}`));
      const batch = ids.map((s, i) => ({ ids: s, position: 0, cache: caches[i]!.layers }));
      const results = await this.run(batch, 'logits', options.microbatches);
      return results.map((r) => (r as Extract<StageResult, { kind: 'logits' }>).logits);
    } finally {
      for (const c of caches) freeCache(c);
    }
  }

  /**
   * Runs sequences through the pipeline in microbatches (sequences split as evenly as they go) and returns
   * one result per microbatch's sequences, in order: each microbatch's last-stage output.
   */
  async run(
    sequences: readonly BatchSequence[],
    want: StageWant,
    microbatches = Math.min(sequences.length, this.stages.length),
  ): Promise<StageResult[]> {
    this.assertLive();
    const groups = splitMicrobatches(sequences, microbatches);
    const outputs = await runPipeline(
      groups,
      this.stages.length,
      async (s, mb, carry: DistributedTensor | StageResult | null) => {
        try {
          return await this.stages[s]!.run(mb, carry as DistributedTensor | null, want);
        } finally {
          (carry as DistributedTensor | null)?.free();
        }
      },
      (mb, out) => splitResult(out as StageResult, mb, want, this.config.vocabSize),
    );
    return outputs.flat();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Frees every parameter on every device; the group stays open (its owner destroys it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const stage of this.stages) stage.free();
    this.ownCtx?.destroy();
  }

  private assertLive(): void {
    if (this.disposed)
      throw new ParallelError('DESTROYED', 'the model was disposed', { where: 'LlamaModel' });
  }
}

export function freeCache(cache: SequenceCache): void {
  for (const layer of cache.layers) for (const t of [...layer.keys, ...layer.values]) t.free();
}

function planOf(plan: LoadOptions['plan'], config: LlamaConfig): ShardingPlan {
  if (plan && 'stages' in plan) return plan;
  return gridPlan(plan?.tp ?? 1, plan?.pp ?? 1, config.numLayers, plan?.ep ?? 1);
}

export function toIds(tokens: readonly number[] | Uint32Array, vocab: number): Uint32Array {
  if (tokens.length === 0) throw new ParallelError('INVALID_ARGUMENT', 'a sequence needs at least one token');
  for (const t of tokens) {
    if (!Number.isSafeInteger(t) || t < 0 || t >= vocab) {
      throw new ParallelError('INVALID_ARGUMENT', `token id ${t} is outside the vocabulary [0, ${vocab})`, {
        where: 'token ids',
      });
    }
  }
  return Uint32Array.from(tokens);
}

function splitMicrobatches<T>(items: readonly T[], count: number): T[][] {
  const n = Math.max(1, Math.min(count, items.length));
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = Math.floor(items.length / n) + (i < items.length % n ? 1 : 0);
    out.push(items.slice(at, at + size));
    at += size;
  }
  return out;
}

/** A microbatch's last-stage output, one result per sequence. */
function splitResult(
  out: StageResult,
  mb: readonly BatchSequence[],
  want: StageWant,
  vocab: number,
): StageResult[] {
  if (out.kind === 'ids') return mb.map((_, i) => ({ kind: 'ids', ids: out.ids.subarray(i, i + 1) }));
  let row = 0;
  return mb.map((s) => {
    const rows = want === 'logits' ? s.ids.length : 1;
    const logits = out.logits.slice(row * vocab, (row + rows) * vocab);
    row += rows;
    return { kind: 'logits', logits };
  });
}
