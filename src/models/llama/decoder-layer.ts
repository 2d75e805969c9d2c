import type { CollectiveContext } from '../../collectives/context.js';
import type { DistributedTensor } from '../../collectives/layout.js';
import { type AttentionStep, ParallelAttention } from '../../parallel/attention.js';
import { ParallelGatedMlp } from '../../parallel/mlp.js';
import type { Module, Parameter } from '../../parallel/module.js';
import { ReplicatedRmsNorm } from '../../parallel/rms-norm.js';
import { addShards } from '../../parallel/shards.js';
import type { WeightReader } from '../../parallel/weight-reader.js';
import type { DeviceGroup } from '../../runtime/device-group.js';
import { TensorScope } from '../../runtime/scope.js';
import type { LlamaConfig } from '../llama-config.js';

/** What a layer's feed-forward half is: Llama's gated MLP, or (Mixtral) a mixture of experts. */
export interface FeedForward extends Module {
  forward(x: DistributedTensor): Promise<DistributedTensor>;
  /** Where true, `forwardResidual` adds the residual inside its last kernel. */
  readonly fusesResidual?: boolean;
  /** residual + forward(x). */
  forwardResidual?(x: DistributedTensor, residual: DistributedTensor): Promise<DistributedTensor>;
}

/**
 * The residual stream between decoder layers: x, and norm(x) for the next layer's input where the layer
 * before computed it together with its last residual add (see `forwardStream`).
 */
export interface LayerStream {
  readonly x: DistributedTensor;
  readonly normed?: DistributedTensor;
}

export interface LayerSplit {
  /** Query heads per device of the stage's group; absent: as even as they divide. */
  readonly heads?: readonly number[];
  /** MLP intermediate columns per device; absent: as even as they divide. */
  readonly intermediate?: readonly number[];
}

/**
 * One Llama decoder layer on a tensor-parallel group: x += attn(norm1(x)); x += ffn(norm2(x)). The input
 * and output are [tokens, hidden], replicated on the group; each half has one all-reduce.
 */
export class LlamaDecoderLayer implements Module {
  readonly attention: ParallelAttention;
  readonly feedForward: FeedForward;
  /** Normalizes the layer's input: the layer before may apply it, fused with its residual add. */
  readonly inputNorm: ReplicatedRmsNorm;
  private readonly postNorm: ReplicatedRmsNorm;

  constructor(
    ctx: CollectiveContext,
    group: DeviceGroup,
    reader: WeightReader,
    config: LlamaConfig,
    readonly index: number,
    split: LayerSplit = {},
    feedForward?: (prefix: string) => FeedForward,
  ) {
    const prefix = `model.layers.${index}`;
    const modules: Module[] = [];
    try {
      this.inputNorm = track(
        new ReplicatedRmsNorm(
          group,
          reader,
          `${prefix}.input_layernorm.weight`,
          config.hiddenSize,
          config.rmsNormEps,
        ),
      );
      this.attention = track(
        new ParallelAttention(ctx, group, reader, `${prefix}.self_attn`, config, split.heads),
      );
      this.postNorm = track(
        new ReplicatedRmsNorm(
          group,
          reader,
          `${prefix}.post_attention_layernorm.weight`,
          config.hiddenSize,
          config.rmsNormEps,
        ),
      );
      this.feedForward = track(
        feedForward?.(prefix) ??
          new ParallelGatedMlp(
            ctx,
            group,
            reader,
            `${prefix}.mlp`,
            config.hiddenSize,
            config.intermediateSize,
            split.intermediate,
          ),
      );
    } catch (error) {
      for (const m of modules) m.free();
      throw error;
    }
    function track<M extends Module>(m: M): M {
      modules.push(m);
      return m;
    }
  }

  parameters(): Parameter[] {
    return [this.inputNorm, this.attention, this.postNorm, this.feedForward].flatMap((m) => m.parameters());
  }

  /** `step` names this layer's cache of each sequence. */
  async forward(x: DistributedTensor, step: AttentionStep): Promise<DistributedTensor> {
    return (await this.forwardStream({ x }, step, null)).x;
  }

  /**
   * x += attn(norm1(x)); x += ffn(norm2(x)); and `next`(x) where given (the next layer's input norm, or
   * the final norm). Each residual add runs inside another kernel: on one device in the store of o_proj's
   * and down's matmul (the product is whole there), else fused with the norm that follows it
   * (addRmsNorm). The input's `normed`, where given, is norm1(x) already. The results are the unfused
   * path's to the bit: the same f32 adds and the same reductions in the same order.
   */
  async forwardStream(
    input: LayerStream,
    step: AttentionStep,
    next: ReplicatedRmsNorm | null,
  ): Promise<LayerStream> {
    using scope = new TensorScope();
    const { x } = input;
    const label = `model.layers.${this.index}`;
    const normed1 = input.normed ?? scope.track(await this.inputNorm.forward(x));
    let mid: DistributedTensor;
    let normed2: DistributedTensor;
    if (this.attention.fusesResidual) {
      mid = scope.track(await this.attention.forward(normed1, step, x));
      normed2 = scope.track(await this.postNorm.forward(mid));
    } else {
      const attended = scope.track(await this.attention.forward(normed1, step));
      const both = await this.postNorm.addAndNorm(x, attended);
      mid = scope.track(both.sum);
      normed2 = scope.track(both.normed);
    }
    const ffn = this.feedForward;
    if (ffn.fusesResidual && ffn.forwardResidual) {
      const out = scope.track(await ffn.forwardResidual(normed2, mid));
      const normed = next ? await next.forward(out) : undefined;
      scope.keep(out);
      return { x: out, normed };
    }
    const ffnOut = scope.track(await ffn.forward(normed2));
    if (!next) return { x: await addShards(mid, ffnOut, `${label}.residual2`) };
    const both = await next.addAndNorm(mid, ffnOut);
    return { x: both.sum, normed: both.normed };
  }

  free(): void {
    for (const m of [this.inputNorm, this.attention, this.postNorm, this.feedForward]) m.free();
  }
}
