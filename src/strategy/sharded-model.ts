import {
  DistributedTensor,
  Partial,
  type Placement,
  Replicate,
  Shard,
  splitOffsets,
} from '../collectives/layout.js';
import { shardWeight } from '../parallel/weights.js';
import type { Device } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { Tensor } from '../runtime/tensor.js';
import type { StagePlan } from './model-plan.js';
import { LAYER_NORM_EPS, type StageWeights } from './model-weights.js';

interface DeviceShard {
  readonly device: Device;
  readonly w: Tensor;
  readonly b?: Tensor;
  readonly gamma?: Tensor;
  readonly beta?: Tensor;
  /** Bias of the previous row-parallel stage, added here once its partial sums are summed. */
  readonly inputBias?: Tensor;
  readonly rowOffset: number;
}

/**
 * One stage's weights, sharded onto its devices, and its forward step. The split follows Megatron:
 * column: Y_r = X · A_r (A = [A_1 .. A_p] by output columns), output Shard(1);
 * row: Y = Σ_r X_r · A_r (A split by input rows, X by its last dim), output Partial(sum), bias after the sum;
 * embedding, column: a slice of the hidden dim per device; vocab (row): a range of rows per device.
 */
export class StageRuntime {
  readonly plan: StagePlan;
  readonly group: DeviceGroup;
  private readonly shards: DeviceShard[];

  constructor(
    plan: StagePlan,
    group: DeviceGroup,
    weights: StageWeights,
    previousRowBias: Float32Array | undefined,
  ) {
    this.plan = plan;
    this.group = group;
    const shape = [plan.inFeatures, plan.outFeatures];
    const name = plan.spec.name;
    // Column splits W (and its bias) on the output dim, row splits on the input dim; the layers' own helper
    // cuts and uploads the shards. A row split's bias waits for the sum, in the consumer.
    const split = plan.mode === 'column' ? 1 : plan.mode === 'row' ? 0 : null;
    const w =
      split === null ? null : shardWeight(group, weights.w, shape, split, plan.shardSizes, `${name}/w`);
    const b =
      plan.mode === 'column' && weights.b
        ? shardWeight(group, weights.b, [plan.outFeatures], 0, plan.shardSizes, `${name}/b`)
        : null;
    const offsets = split === null ? [] : splitOffsets(plan.shardSizes);
    this.shards = group.devices.map((device, rank) => {
      const label = `${name}[${rank}]`;
      const whole = (data: Float32Array | undefined, dims: number[], what: string) =>
        data && device.upload(data, dims, `${label}/${what}`);
      return {
        device,
        w: w ? w.shards[rank]! : device.upload(weights.w, shape, `${label}/w`),
        b: b ? b.shards[rank] : split === null ? whole(weights.b, [plan.outFeatures], 'b') : undefined,
        gamma: whole(weights.gamma, [plan.inFeatures], 'gamma'),
        beta: whole(weights.beta, [plan.inFeatures], 'beta'),
        inputBias: whole(previousRowBias, [plan.inFeatures], 'input-bias'),
        rowOffset: offsets[rank] ?? 0,
      };
    });
  }

  /** The devices that run microbatch `mb`: the whole group, or one replica in turn. */
  groupFor(microbatch: number): DeviceGroup {
    if (this.plan.mode !== 'replicas') return this.group;
    return this.group.select([this.group.devices[microbatch % this.group.size]!.id]);
  }

  /** The layout this stage reads its input in: the shards of a row split, else whole on each device. */
  inputPlacement(): Placement {
    return this.plan.mode === 'row' && this.plan.kind !== 'embedding'
      ? Shard(1, this.plan.shardSizes)
      : Replicate();
  }

  /** Runs the stage on every device of `groupFor(mb)`; kernels are queued, not awaited to completion. */
  async forward(
    input: DistributedTensor | Uint32Array,
    microbatch: number,
    seqLen: number,
  ): Promise<DistributedTensor> {
    const group = this.groupFor(microbatch);
    const plan = this.plan;
    const outputs = await Promise.all(
      group.devices.map(async (device, rank) => {
        const shard = this.shards[this.group.rankOf(device)]!;
        device.setProfileTag(`${plan.spec.name}/mb${microbatch}`);
        const k = device.kernels;
        const tag = `${plan.spec.name}/mb${microbatch}`;
        if (input instanceof Uint32Array) {
          const ids = device.upload(input, [input.length], `${tag}/ids`);
          const out = await k.embedding(shard.w, ids, {
            rowOffset: plan.mode === 'row' ? shard.rowOffset : 0,
            label: `${tag}/out`,
          });
          ids.free();
          return out;
        }
        let x = input.shards[rank]!;
        let added: Tensor | undefined;
        if (shard.inputBias) {
          added = await k.add(x, shard.inputBias, `${tag}/biased`);
          x = added;
        }
        let out: Tensor;
        if (plan.kind === 'linear') {
          out = await k.matmul(x, shard.w, {
            bias: shard.b,
            activation: plan.mode === 'row' ? 'none' : plan.activation,
            label: `${tag}/out`,
          });
        } else {
          const mean = await k.meanRows(x, seqLen, `${tag}/mean`);
          const normed = await k.layerNorm(mean, shard.gamma!, shard.beta!, LAYER_NORM_EPS, `${tag}/norm`);
          const logits = await k.matmul(normed, shard.w, { bias: shard.b, label: `${tag}/logits` });
          out = await k.softmax(logits, `${tag}/out`);
          for (const t of [mean, normed, logits]) t.free();
        }
        added?.free();
        return out;
      }),
    );
    const rows = outputs[0]!.shape[0]!;
    const placement: Placement =
      plan.mode === 'column' ? Shard(1, plan.shardSizes) : plan.mode === 'row' ? Partial() : Replicate();
    return new DistributedTensor(group, placement, [rows, plan.outFeatures], outputs);
  }

  /** Bias a row-parallel stage leaves for its consumer to add after the sum. */
  static rowBias(plan: StagePlan, weights: StageWeights): Float32Array | undefined {
    return plan.mode === 'row' && plan.kind === 'linear' ? weights.b : undefined;
  }

  destroy(): void {
    for (const s of this.shards) for (const t of [s.w, s.b, s.gamma, s.beta, s.inputBias]) t?.free();
  }
}
