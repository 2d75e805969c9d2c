import { allGather } from '../collectives/all-gather.js';
import type { CollectiveContext } from '../collectives/context.js';
import { type DistributedTensor, Shard } from '../collectives/layout.js';
import { NO_TRAFFIC, type Traffic } from '../collectives/traffic.js';
import { ParallelError } from '../errors.js';
import type { Activation } from '../kernels/kernels.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { checkFills, formatShape } from '../runtime/tensor.js';
import { mapShards } from './shards.js';
import { checkSameGroup, type LinearLayerOptions, layerWeight, shardWeight } from './weights.js';

export interface ColumnParallelLinearOptions extends LinearLayerOptions {
  /** Output columns per device (uneven on purpose); absent: an even split, which must divide. */
  readonly sizes?: readonly number[];
  /** All-gather the output so every device holds all of Y (Megatron's gather_output). */
  readonly gatherOutput?: boolean;
  readonly activation?: Activation;
}

export interface LayerOutput {
  readonly output: DistributedTensor;
  readonly traffic: Traffic;
}

/**
 * Column-parallel linear (split_dim=1): Y = XA + b, A = [A_1 .. A_p], b = [b_1 .. b_p]; device r computes
 * Y_r = X A_r + b_r from a replicated X, so Y comes out sharded on its last dim, or all-gathered.
 */
export class ColumnParallelLinear {
  readonly group: DeviceGroup;
  readonly weight: DistributedTensor;
  readonly bias: DistributedTensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly options: ColumnParallelLinearOptions;
  private readonly label: string;

  constructor(
    private readonly ctx: CollectiveContext,
    options: ColumnParallelLinearOptions,
  ) {
    this.label = options.label ?? 'ColumnParallelLinear';
    this.group = options.group;
    this.inFeatures = options.inFeatures;
    this.outFeatures = options.outFeatures;
    this.options = options;
    const shape = [options.inFeatures, options.outFeatures];
    if (options.bias) checkFills(options.bias, [options.outFeatures], `${this.label}.bias`);
    this.weight = layerWeight(this.group, options.weight, shape, 1, options.sizes, `${this.label}.weight`);
    try {
      this.bias = options.bias
        ? shardWeight(this.group, options.bias, [options.outFeatures], 0, options.sizes, `${this.label}.bias`)
        : null;
    } catch (error) {
      this.weight.free();
      throw error;
    }
  }

  /** x: [tokens, inFeatures], replicated on the layer's group. */
  async forward(x: DistributedTensor): Promise<LayerOutput> {
    checkSameGroup(x, this.group, this.label);
    if (
      x.placement.kind !== 'replicate' ||
      x.globalShape.length !== 2 ||
      x.globalShape[1] !== this.inFeatures
    ) {
      throw new ParallelError(
        'SHAPE',
        `${this.label} needs a replicated [tokens, ${this.inFeatures}] input, got ${x.describe()}`,
        {
          where: this.label,
        },
      );
    }
    const sharded = await mapShards(
      x,
      (shard, device, r) =>
        device.kernels.matmul(shard, this.weight.shards[r]!, {
          bias: this.bias?.shards[r],
          activation: this.options.activation,
          label: `${this.label}[${r}]`,
        }),
      Shard(1, (this.weight.placement as { sizes?: readonly number[] }).sizes),
      [x.globalShape[0]!, this.outFeatures],
    );
    if (!this.options.gatherOutput) return { output: sharded, traffic: NO_TRAFFIC };
    try {
      const gathered = await allGather(this.ctx, sharded, this.group, { label: `${this.label}/gather` });
      sharded.free(gathered.output.shards);
      return gathered;
    } catch (error) {
      sharded.free();
      throw error;
    }
  }

  describe(): string {
    return `${this.label}: [${this.inFeatures}, ${this.outFeatures}] split on out ${formatShape(this.weight.shards.map((s) => s.shape[1]!))}`;
  }

  free(): void {
    this.weight.free();
    this.bias?.free();
  }
}
