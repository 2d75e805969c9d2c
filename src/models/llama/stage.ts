import type { CollectiveContext } from '../../collectives/context.js';
import { gatherToHost, shardFromHost } from '../../collectives/host-io.js';
import { type DistributedTensor, Replicate } from '../../collectives/layout.js';
import { redistribute } from '../../collectives/redistribute.js';
import type { LayerKv, SequenceRows } from '../../parallel/attention.js';
import { VocabParallelEmbedding } from '../../parallel/embedding.js';
import type { ExpertLoad } from '../../parallel/expert-load.js';
import { balancedSizes } from '../../parallel/head-split.js';
import { VocabParallelHead } from '../../parallel/lm-head.js';
import { expectShape, loadRowShards } from '../../parallel/load-shards.js';
import type { Module, Parameter } from '../../parallel/module.js';
import { MixtureOfExperts } from '../../parallel/moe.js';
import { ReplicatedRmsNorm } from '../../parallel/rms-norm.js';
import { allOrFree, mapShards } from '../../parallel/shards.js';
import type { WeightReader } from '../../parallel/weight-reader.js';
import type { DeviceGroup } from '../../runtime/device-group.js';
import { TensorScope } from '../../runtime/scope.js';
import type { LlamaConfig } from '../llama-config.js';
import type { ResolvedStage } from '../sharding-plan.js';
import { type FeedForward, type LayerStream, LlamaDecoderLayer } from './decoder-layer.js';

/** One sequence's part of a microbatch: its new tokens and its KV cache (one entry per model layer). */
export interface BatchSequence {
  readonly ids: Uint32Array;
  /** Tokens already in its cache. */
  readonly position: number;
  readonly cache: readonly LayerKv[];
}

export interface StageMoeOptions {
  readonly capacityFactor?: number;
  readonly load?: ExpertLoad;
  /** The stage's index in the plan, naming it in the load record. */
  readonly stage?: number;
}

/** What the last stage gives back: every row's logits, or each sequence's last row's greedy id. */
export type StageWant = 'logits' | 'last-logits' | 'last-greedy';

export type StageResult = { kind: 'logits'; logits: Float32Array } | { kind: 'ids'; ids: Uint32Array };

/**
 * A pipeline stage of a Llama model on one tensor-parallel group: its decoder layers, plus the embedding on
 * the first stage and the final norm and vocab-parallel head on the last.
 */
export class LlamaStage implements Module {
  readonly layers: LlamaDecoderLayer[] = [];
  private embedding: VocabParallelEmbedding | null = null;
  private embeddingTable: DistributedTensor | null = null;
  private finalNorm: ReplicatedRmsNorm | null = null;
  private head: VocabParallelHead | null = null;
  /** An embedding table loaded again for a tied head on a stage other than the first. */
  private tiedCopy: DistributedTensor | null = null;

  constructor(
    private readonly ctx: CollectiveContext,
    readonly group: DeviceGroup,
    readonly spec: ResolvedStage,
    readonly first: boolean,
    readonly last: boolean,
    private readonly config: LlamaConfig,
  ) {}

  /**
   * Loads this stage's parameters, each device reading only its own shards. A Mixtral config's layers get
   * a mixture of experts placed as the stage's spec says, unless `feedForward` builds something else.
   */
  load(
    reader: WeightReader,
    feedForward?: (stage: LlamaStage, prefix: string) => FeedForward,
    moe: StageMoeOptions = {},
  ): void {
    const { vocabSize: vocab, hiddenSize: hidden } = this.config;
    const vocabSizes = balancedSizes(vocab, this.group.size);
    if (this.first) {
      expectShape(reader, 'model.embed_tokens.weight', [vocab, hidden]);
      this.embeddingTable = loadRowShards(reader, 'model.embed_tokens.weight', this.group, vocabSizes);
      this.embedding = new VocabParallelEmbedding(this.ctx, {
        group: this.group,
        table: this.embeddingTable,
        vocab,
        hidden,
        sizes: vocabSizes,
        label: 'model.embed_tokens',
      });
    }
    for (let i = 0; i < this.spec.layers; i++) {
      const index = this.spec.firstLayer + i;
      const split = { heads: this.spec.heads, intermediate: this.spec.intermediate };
      const ffn = feedForward
        ? (prefix: string) => feedForward(this, prefix)
        : this.experts(reader, index, moe);
      this.layers.push(new LlamaDecoderLayer(this.ctx, this.group, reader, this.config, index, split, ffn));
    }
    if (this.last) {
      this.finalNorm = new ReplicatedRmsNorm(
        this.group,
        reader,
        'model.norm.weight',
        hidden,
        this.config.rmsNormEps,
      );
      let weight: ConstructorParameters<typeof VocabParallelHead>[0]['weight'];
      if (!this.config.tieWordEmbeddings) weight = { name: 'lm_head.weight', reader };
      else if (this.embeddingTable) weight = { tied: this.embeddingTable };
      else {
        this.tiedCopy = loadRowShards(reader, 'model.embed_tokens.weight', this.group, vocabSizes);
        weight = { tied: this.tiedCopy };
      }
      this.head = new VocabParallelHead({ group: this.group, hidden, vocab, sizes: vocabSizes, weight });
    }
  }

  private experts(
    reader: WeightReader,
    layer: number,
    moe: StageMoeOptions,
  ): ((prefix: string) => FeedForward) | undefined {
    const { numExperts, expertsPerToken } = this.config;
    if (numExperts === undefined || expertsPerToken === undefined) return undefined;
    const shape = { ...this.config, numExperts, expertsPerToken };
    return (prefix) =>
      new MixtureOfExperts(this.ctx, this.group, reader, prefix, shape, {
        ep: this.spec.ep,
        experts: this.spec.experts,
        capacityFactor: moe.capacityFactor,
        load: moe.load,
        stage: moe.stage,
        layer,
      });
  }

  parameters(): Parameter[] {
    const own: Parameter[] = this.embeddingTable
      ? [{ name: 'model.embed_tokens.weight', value: this.embeddingTable }]
      : [];
    const modules: Module[] = [
      ...this.layers,
      ...(this.finalNorm ? [this.finalNorm] : []),
      ...(this.head ? [this.head] : []),
    ];
    return [...own, ...modules.flatMap((m) => m.parameters())];
  }

  /** Bytes of each device's KV cache for one sequence of `capacity` positions over this stage's layers. */
  cacheBytes(capacity: number): number[] {
    const bytes = this.group.devices.map(() => 0);
    for (const layer of this.layers) {
      for (const [r, b] of layer.attention.cacheBytes(capacity).entries()) bytes[r]! += b;
    }
    return bytes;
  }

  /**
   * Runs one microbatch through the stage: from token ids (first stage) or the previous stage's hidden
   * states, moved onto this group; to the next stage's input, or (last stage) what `want` asks for.
   */
  async run(
    sequences: readonly BatchSequence[],
    input: DistributedTensor | null,
    want: StageWant,
  ): Promise<DistributedTensor | StageResult> {
    using scope = new TensorScope();
    const tokens = sequences.reduce((n, s) => n + s.ids.length, 0);
    let x: DistributedTensor;
    if (this.first) {
      const ids = concatIds(sequences.map((s) => s.ids));
      const onGroup = scope.track(shardFromHost(this.group, ids, [tokens], Replicate(), 'input_ids'));
      x = scope.track((await this.embedding!.forward(onGroup)).output);
    } else {
      const moved = await redistribute(this.ctx, input!, this.group, Replicate(), { label: 'stage-input' });
      x = scope.track(moved.output);
    }
    const positions = scope.track(
      shardFromHost(this.group, positionsOf(sequences), [tokens], Replicate(), 'positions'),
    );
    let start = 0;
    const rows = sequences.map((s) => {
      const r = { start, length: s.ids.length, position: s.position };
      start += s.ids.length;
      return r;
    });
    // Every row is wanted where the logits of all are, or where each sequence brings one token (decode):
    // the last layer then applies the final norm with its residual add.
    const allRows = want === 'logits' || rows.every((r) => r.length === 1);
    let stream: LayerStream = { x };
    for (const [l, layer] of this.layers.entries()) {
      const step = {
        positions,
        sequences: rows.map((r, i): SequenceRows => ({ ...r, kv: sequences[i]!.cache[layer.index]! })),
      };
      const next = this.layers[l + 1]?.inputNorm ?? (this.last && allRows ? this.finalNorm : null);
      stream = await layer.forwardStream(stream, step, next);
      scope.track(stream.x);
      if (stream.normed) scope.track(stream.normed);
    }
    x = stream.x;
    if (!this.last) return scope.keep(x);
    let normed = stream.normed;
    if (!normed) {
      const picked = allRows ? x : scope.track(await lastRows(x, rows));
      normed = scope.track(await this.finalNorm!.forward(picked));
    }
    if (want === 'last-greedy') return { kind: 'ids', ids: await this.head!.greedy(normed) };
    const logits = scope.track(await this.head!.logits(normed));
    return { kind: 'logits', logits: (await gatherToHost(logits)) as Float32Array };
  }

  free(): void {
    this.embedding?.free();
    for (const layer of this.layers) layer.free();
    this.finalNorm?.free();
    this.head?.free();
    this.tiedCopy?.free();
  }
}

function concatIds(parts: readonly Uint32Array[]): Uint32Array {
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function positionsOf(sequences: readonly BatchSequence[]): Uint32Array {
  return concatIds(sequences.map((s) => Uint32Array.from(s.ids, (_, i) => s.position + i)));
}

/** Each sequence's last row, on the devices: the only rows whose logits a generation step reads. */
async function lastRows(
  x: DistributedTensor,
  rows: readonly { start: number; length: number }[],
): Promise<DistributedTensor> {
  const hidden = x.globalShape[1]!;
  return mapShards(
    x,
    async (shard, device) => {
      using scope = new TensorScope();
      const picked = await allOrFree(
        rows.map((r) => device.kernels.slice(shard, 0, r.start + r.length - 1, 1, 'last-row')),
        (t) => t.free(),
      );
      for (const p of picked) scope.track(p);
      if (picked.length === 1) return scope.keep(picked[0]!);
      return await device.kernels.concat(picked, 0, 'last-rows');
    },
    x.placement,
    [rows.length, hidden],
  );
}
