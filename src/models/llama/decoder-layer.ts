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
  private readonly inputNorm: ReplicatedRmsNorm;
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
    using scope = new TensorScope();
    const attended = scope.track(
      await this.attention.forward(scope.track(await this.inputNorm.forward(x)), step),
    );
    const mid = scope.track(await addShards(x, attended, `model.layers.${this.index}.residual1`));
    const ffn = scope.track(await this.feedForward.forward(scope.track(await this.postNorm.forward(mid))));
    return await addShards(mid, ffn, `model.layers.${this.index}.residual2`);
  }

  free(): void {
    for (const m of [this.inputNorm, this.attention, this.postNorm, this.feedForward]) m.free();
  }
}
