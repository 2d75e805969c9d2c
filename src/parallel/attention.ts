import type { CollectiveContext } from '../collectives/context.js';
import { DistributedTensor, Shard } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { TensorScope } from '../runtime/scope.js';
import type { Tensor } from '../runtime/tensor.js';
import { type RankHeads, splitHeads } from './head-split.js';
import { expectShape, loadColumnParallel, loadRowParallel, type Span, spansOf } from './load-shards.js';
import type { Module, Parameter } from './module.js';
import { RowParallelLinear } from './row-parallel-linear.js';
import { allOrFree } from './shards.js';
import type { WeightReader } from './weight-reader.js';

export interface AttentionConfig {
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly ropeTheta: number;
}

/** One layer's KV cache on each device of the group: [local KV slots, capacity, headDim] per device. */
export interface LayerKv {
  readonly keys: readonly Tensor[];
  readonly values: readonly Tensor[];
}

/** The rows of one sequence in a step's token batch, and where its new tokens go in its cache. */
export interface SequenceRows {
  readonly start: number;
  readonly length: number;
  /** Position of its first new token: the tokens already in its cache. */
  readonly position: number;
  readonly kv: LayerKv;
}

export interface AttentionStep {
  /** u32 [tokens], replicated on the group: every token's position, for the rotary embedding. */
  readonly positions: DistributedTensor;
  readonly sequences: readonly SequenceRows[];
}

/**
 * Megatron's self-attention with grouped-query heads: q/k/v column-parallel by whole heads (each device
 * holds its query heads and the KV heads they read), attention on each device alone, o_proj row-parallel,
 * one all-reduce. x is [tokens, hidden], replicated on the group; so is the output (before the residual).
 */
export class ParallelAttention implements Module {
  readonly heads: readonly RankHeads[];
  private readonly q: DistributedTensor;
  private readonly k: DistributedTensor;
  private readonly v: DistributedTensor;
  private readonly o: RowParallelLinear;

  constructor(
    ctx: CollectiveContext,
    readonly group: DeviceGroup,
    reader: WeightReader,
    private readonly prefix: string,
    private readonly config: AttentionConfig,
    headSizes?: readonly number[],
  ) {
    const { hiddenSize, numHeads, numKvHeads, headDim } = config;
    this.heads = splitHeads(numHeads, numKvHeads, group.size, headSizes);
    expectShape(reader, `${prefix}.q_proj.weight`, [numHeads * headDim, hiddenSize]);
    expectShape(reader, `${prefix}.k_proj.weight`, [numKvHeads * headDim, hiddenSize]);
    expectShape(reader, `${prefix}.v_proj.weight`, [numKvHeads * headDim, hiddenSize]);
    expectShape(reader, `${prefix}.o_proj.weight`, [hiddenSize, numHeads * headDim]);
    const kvSpans = this.heads.map((h) => kvRuns(h.kvHeads, headDim));
    using scope = new TensorScope();
    this.q = scope.track(
      loadColumnParallel(
        reader,
        `${prefix}.q_proj.weight`,
        group,
        spansOf(
          this.heads.map((h) => h.qCount),
          headDim,
        ),
      ),
    );
    this.k = scope.track(loadColumnParallel(reader, `${prefix}.k_proj.weight`, group, kvSpans));
    this.v = scope.track(loadColumnParallel(reader, `${prefix}.v_proj.weight`, group, kvSpans));
    const oSizes = this.heads.map((h) => h.qCount * headDim);
    this.o = new RowParallelLinear(ctx, {
      group,
      weight: loadRowParallel(reader, `${prefix}.o_proj.weight`, group, oSizes),
      inFeatures: numHeads * headDim,
      outFeatures: hiddenSize,
      sizes: oSizes,
      inputIsParallel: true,
      label: `${prefix}.o_proj`,
    });
    for (const w of [this.q, this.k, this.v]) scope.keep(w);
  }

  parameters(): Parameter[] {
    return [
      { name: `${this.prefix}.q_proj.weight`, value: this.q },
      { name: `${this.prefix}.k_proj.weight`, value: this.k },
      { name: `${this.prefix}.v_proj.weight`, value: this.v },
      { name: `${this.prefix}.o_proj.weight`, value: this.o.weight },
    ];
  }

  /** Bytes each device's cache takes for `capacity` positions (keys and values). */
  cacheBytes(capacity: number): number[] {
    return this.heads.map((h) => 2 * h.kvHeads.length * capacity * this.config.headDim * 4);
  }

  /** A zeroed cache of `capacity` positions on every device of the group. */
  newCache(capacity: number, label: string): LayerKv {
    const shape = (r: number) => [this.heads[r]!.kvHeads.length, capacity, this.config.headDim];
    using scope = new TensorScope();
    const keys = this.group.devices.map((d, r) => scope.track(d.empty(shape(r), 'f32', `${label}.k[${r}]`)));
    const values = this.group.devices.map((d, r) =>
      scope.track(d.empty(shape(r), 'f32', `${label}.v[${r}]`)),
    );
    for (const t of [...keys, ...values]) scope.keep(t);
    return { keys, values };
  }

  /** Whether `forward` adds a residual inside o_proj's matmul (see RowParallelLinear.fusesResidual). */
  get fusesResidual(): boolean {
    return this.o.fusesResidual;
  }

  /** attn(x), or residual + attn(x) where a residual is given (replicated like x). */
  async forward(
    x: DistributedTensor,
    step: AttentionStep,
    residual?: DistributedTensor,
  ): Promise<DistributedTensor> {
    const tokens = x.globalShape[0]!;
    const { numHeads, headDim } = this.config;
    const sizes = this.heads.map((h) => h.qCount * headDim);
    const shards = await allOrFree(
      this.group.devices.map((_, r) => this.attendOnRank(r, x.shards[r]!, step)),
      (t) => t.free(),
    );
    const attended = new DistributedTensor(this.group, Shard(1, sizes), [tokens, numHeads * headDim], shards);
    try {
      const out = residual ? this.o.forwardResidual(attended, residual) : this.o.forward(attended);
      return (await out).output;
    } finally {
      attended.free();
    }
  }

  /** Everything of one device between the replicated input and its o_proj input: no host round trip. */
  private async attendOnRank(r: number, x: Tensor, step: AttentionStep): Promise<Tensor> {
    const kernels = x.device.kernels;
    const { headDim, ropeTheta: theta } = this.config;
    const heads = this.heads[r]!;
    const rope = { headDim, theta };
    using scope = new TensorScope();
    const qRaw = scope.track(await kernels.matmul(x, this.q.shards[r]!, { label: `${this.prefix}.q` }));
    const kRaw = scope.track(await kernels.matmul(x, this.k.shards[r]!, { label: `${this.prefix}.k` }));
    const v = scope.track(await kernels.matmul(x, this.v.shards[r]!, { label: `${this.prefix}.v` }));
    const positions = step.positions.shards[r]!;
    const q = scope.track(await kernels.rope(qRaw, positions, { ...rope, label: `${this.prefix}.q.rope` }));
    const k = scope.track(await kernels.rope(kRaw, positions, { ...rope, label: `${this.prefix}.k.rope` }));
    const whole = step.sequences.length === 1;
    const outputs: Tensor[] = [];
    for (const seq of step.sequences) {
      const rows = async (t: Tensor) =>
        whole ? t : scope.track(await kernels.slice(t, 0, seq.start, seq.length));
      await kernels.writeCache(seq.kv.keys[r]!, await rows(k), seq.position);
      await kernels.writeCache(seq.kv.values[r]!, await rows(v), seq.position);
      outputs.push(scope.track(await this.attendSequence(r, heads, await rows(q), seq)));
    }
    if (outputs.length === 1) return scope.keep(outputs[0]!);
    return await kernels.concat(outputs, 0, `${this.prefix}.attended`);
  }

  /** softmax(q kᵀ / sqrt(d), causal) v for one sequence's new tokens over its whole cache. */
  private async attendSequence(r: number, heads: RankHeads, q: Tensor, seq: SequenceRows): Promise<Tensor> {
    const kernels = q.device.kernels;
    const { headDim } = this.config;
    const len = seq.length;
    const slots = heads.kvHeads.length;
    const known = seq.position + len;
    using scope = new TensorScope();
    // [len, heads, d] -> [heads, len, d]; one token needs no copy. Query heads that share a KV slot are
    // consecutive, so [slots, group * len, d] multiplies each slot's cache once for all of them.
    const byHead =
      len === 1
        ? q.reshape([slots, heads.group, headDim])
        : scope.track(
            await kernels.transpose01(q.reshape([len, heads.qCount, headDim]), `${this.prefix}.q.heads`),
          );
    const queries = byHead.reshape([slots, heads.group * len, headDim]);
    const scores = scope.track(
      await kernels.batchedMatmul(queries, seq.kv.keys[r]!, {
        transposeB: true,
        scale: 1 / Math.sqrt(headDim),
        bRows: known,
        label: `${this.prefix}.scores`,
      }),
    );
    const probs = scope.track(
      await kernels.causalSoftmax(scores, {
        queries: len,
        offset: seq.position,
        label: `${this.prefix}.probs`,
      }),
    );
    const context = scope.track(
      await kernels.batchedMatmul(probs, seq.kv.values[r]!, {
        bRows: known,
        label: `${this.prefix}.context`,
      }),
    );
    if (len === 1) return scope.keep(context).reshape([1, heads.qCount * headDim], { owning: true });
    const merged = await kernels.transpose01(
      context.reshape([heads.qCount, len, headDim]),
      `${this.prefix}.merged`,
    );
    return merged.reshape([len, heads.qCount * headDim], { owning: true });
  }

  free(): void {
    this.q.free();
    this.k.free();
    this.v.free();
    this.o.free();
  }
}

/** The rows of k_proj / v_proj for a list of KV heads, merged into runs of consecutive rows. */
function kvRuns(kvHeads: readonly number[], headDim: number): Span[] {
  const runs: Span[] = [];
  for (const h of kvHeads) {
    const last = runs[runs.length - 1];
    if (last && last.start + last.length === h * headDim)
      runs[runs.length - 1] = { ...last, length: last.length + headDim };
    else runs.push({ start: h * headDim, length: headDim });
  }
  return runs;
}
