import type { CollectiveContext, ReduceOn } from '../collectives/context.js';
import { DistributedTensor, Partial, Replicate, Shard, splitOffsets } from '../collectives/layout.js';
import { redistribute } from '../collectives/redistribute.js';
import { addTraffic, NO_TRAFFIC } from '../collectives/traffic.js';
import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import { DeviceGroup } from '../runtime/device-group.js';
import { checkFills, type Tensor } from '../runtime/tensor.js';
import type { LayerOutput } from './column-parallel-linear.js';
import { addBiasOnce, uploadReplicated } from './replicated.js';
import { addShards, mapShards } from './shards.js';
import { checkSameGroup, type LinearLayerOptions, layerWeight } from './weights.js';

function sameDevices(a: DeviceGroup, b: DeviceGroup): boolean {
  return a.size === b.size && a.devices.every((d, i) => d === b.devices[i]);
}

export interface RowParallelLinearOptions extends LinearLayerOptions {
  /** Input features (weight rows) per device; absent: an even split, which must divide. */
  readonly sizes?: readonly number[];
  /** The input is already sharded on its last dim like the weight's rows (Megatron's input_is_parallel). */
  readonly inputIsParallel?: boolean;
  /** Sum the partial outputs onto this one device ("AllReduce from [1,2] to [2]"); absent: all-reduce. */
  readonly reduceTo?: Device;
  readonly reduceOn?: ReduceOn;
}

/**
 * Row-parallel linear (split_dim=0): Y = XA + b, A = [A_1; ..; A_p], X = [X_1 .. X_p]; device r computes
 * the partial X_r A_r, the partials are summed (all-reduce, or reduce to one device), and b is added once.
 */
export class RowParallelLinear {
  readonly group: DeviceGroup;
  readonly weight: DistributedTensor;
  /** Where the summed output lives: the group, or the one `reduceTo` device. */
  readonly outputGroup: DeviceGroup;
  readonly bias: DistributedTensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly label: string;
  /** Bias copies `addBias` made on devices outside the output group, by device and slice. */
  private readonly biasCopies = new Map<Device, Map<string, Tensor>>();

  constructor(
    private readonly ctx: CollectiveContext,
    private readonly options: RowParallelLinearOptions,
  ) {
    this.label = options.label ?? 'RowParallelLinear';
    this.group = options.group;
    this.inFeatures = options.inFeatures;
    this.outFeatures = options.outFeatures;
    const shape = [options.inFeatures, options.outFeatures];
    if (options.bias) checkFills(options.bias, [options.outFeatures], `${this.label}.bias`);
    this.outputGroup = options.reduceTo ? DeviceGroup.of([options.reduceTo]) : this.group;
    this.weight = layerWeight(this.group, options.weight, shape, 0, options.sizes, `${this.label}.weight`);
    this.bias = options.bias ? uploadReplicated(this.outputGroup, options.bias, `${this.label}.bias`) : null;
  }

  get rowSizes(): readonly number[] {
    return this.weight.shards.map((s) => s.shape[0]!);
  }

  /** x: [tokens, inFeatures]; sharded on its last dim like the weight's rows, or any layout to scatter. */
  async forward(x: DistributedTensor): Promise<LayerOutput> {
    const { output: partial, traffic } = await this.forwardPartial(x);
    let summed: Awaited<ReturnType<typeof redistribute>>;
    try {
      summed = await redistribute(this.ctx, partial, this.outputGroup, Replicate(), {
        label: `${this.label}/sum`,
        reduceOn: this.options.reduceOn,
      });
    } catch (error) {
      partial.free();
      throw error;
    }
    partial.free(summed.output.shards);
    const output = this.bias ? await addBiasOnce(summed.output, this.bias) : summed.output;
    return { output, traffic: addTraffic(traffic, summed.traffic) };
  }

  /**
   * Whether `forward` can take the residual into the matmul's store: only where the product is whole on one
   * device (no partial sums to add first) and no bias is due after it, so Y = XA + R keeps the order of the
   * unfused add exactly.
   */
  get fusesResidual(): boolean {
    return this.group.size === 1 && this.outputGroup === this.group && this.bias === null;
  }

  /**
   * Y = XA + R, R replicated like the output ([tokens, outFeatures]): one kernel where `fusesResidual`,
   * else `forward` and an add on each device.
   */
  async forwardResidual(x: DistributedTensor, residual: DistributedTensor): Promise<LayerOutput> {
    if (this.fusesResidual) {
      checkSameGroup(residual, this.group, this.label);
      const { output, traffic } = await this.products(x, residual);
      // The one device's product is the whole sum: Partial over one device is Replicate.
      return {
        output: new DistributedTensor(this.group, Replicate(), output.globalShape, output.shards),
        traffic,
      };
    }
    const { output, traffic } = await this.forward(x);
    try {
      return { output: await addShards(output, residual, `${this.label}+residual`), traffic };
    } finally {
      output.free();
    }
  }

  /**
   * The partial products X_r A_r, Partial(sum) on the layer's group: no sum and no bias yet. For a caller
   * that sums them with a collective of its own (a strategy file names it, onto any devices) and then adds
   * the bias once with `addBias` (Megatron's skip_bias_add, with the reduction left to the caller too).
   */
  forwardPartial(x: DistributedTensor): Promise<LayerOutput> {
    return this.products(x);
  }

  /** X_r A_r on every device, with R added in the store where given (one device only: see fusesResidual). */
  private async products(x: DistributedTensor, residual?: DistributedTensor): Promise<LayerOutput> {
    if (x.globalShape.length !== 2 || x.globalShape[1] !== this.inFeatures) {
      throw new ParallelError(
        'SHAPE',
        `${this.label} needs a [tokens, ${this.inFeatures}] input, got ${x.describe()}`,
        {
          where: this.label,
        },
      );
    }
    const split = Shard(1, this.rowSizes);
    let traffic = NO_TRAFFIC;
    let input = x;
    if (this.options.inputIsParallel) {
      checkSameGroup(x, this.group, this.label);
      const sizes = x.shards.map((s) => s.shape[1]);
      if (
        x.placement.kind !== 'shard' ||
        x.placement.dim !== 1 ||
        sizes.some((s, r) => s !== this.rowSizes[r])
      ) {
        throw new ParallelError(
          'SHAPE',
          `${this.label} needs its input sharded on dim 1 as [${this.rowSizes.join(', ')}], got ${x.describe()}`,
          {
            where: this.label,
          },
        );
      }
    } else {
      const scattered = await redistribute(this.ctx, x, this.group, split, {
        label: `${this.label}/scatter`,
      });
      input = scattered.output;
      traffic = scattered.traffic;
    }
    try {
      const partial = await mapShards(
        input,
        (shard, device, r) =>
          device.kernels.matmul(shard, this.weight.shards[r]!, {
            label: `${this.label}[${r}]`,
            residual: residual?.shards[r],
          }),
        Partial(),
        [x.globalShape[0]!, this.outFeatures],
      );
      return { output: partial, traffic };
    } finally {
      if (input !== x) input.free(x.shards);
    }
  }

  /**
   * The sum of `forwardPartial`'s output plus b, added once: `summed` may lie on any devices, replicated
   * or sharded on its last dim (each shard gets its slice of b). `summed` is consumed.
   */
  async addBias(summed: DistributedTensor): Promise<DistributedTensor> {
    const bias = this.options.bias;
    if (!bias) return summed;
    const p = summed.placement;
    if (p.kind === 'partial' || summed.globalShape[summed.globalShape.length - 1] !== this.outFeatures) {
      throw new ParallelError(
        'SHAPE',
        `${this.label}.addBias needs the summed output, got ${summed.describe()}`,
        {
          where: this.label,
          fix: 'sum the partial outputs first (all_reduce, reduce or reduce_scatter)',
        },
      );
    }
    if (p.kind === 'replicate' && this.bias && sameDevices(summed.group, this.outputGroup))
      return addBiasOnce(summed, this.bias);
    const lastDim = p.kind === 'shard' && p.dim === summed.globalShape.length - 1;
    const widths = summed.shards.map((s) => (lastDim ? s.shape[s.shape.length - 1]! : this.outFeatures));
    const offsets = lastDim ? splitOffsets(widths) : widths.map(() => 0);
    try {
      return await mapShards(summed, (s, device, r) =>
        device.kernels.add(s, this.biasSlice(device, offsets[r]!, widths[r]!), `${s.label}+bias`),
      );
    } finally {
      summed.free();
    }
  }

  /** b[offset, offset + width) on `device`, uploaded on first use and kept with the layer. */
  private biasSlice(device: Device, offset: number, width: number): Tensor {
    const key = `${offset}:${width}`;
    const perDevice = this.biasCopies.get(device) ?? new Map<string, Tensor>();
    this.biasCopies.set(device, perDevice);
    let t = perDevice.get(key);
    if (!t) {
      t = device.upload(
        this.options.bias!.subarray(offset, offset + width),
        [width],
        `${this.label}.bias@${key}`,
      );
      perDevice.set(key, t);
    }
    return t;
  }

  free(): void {
    this.weight.free();
    this.bias?.free();
    for (const copies of this.biasCopies.values()) for (const t of copies.values()) t.free();
    this.biasCopies.clear();
  }
}
