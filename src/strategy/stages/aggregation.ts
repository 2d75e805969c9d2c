import type { CollectiveContext } from '../../collectives/context.js';
import { DistributedTensor, Replicate } from '../../collectives/layout.js';
import { layerNormRef, matmulRef, meanRowsRef, softmaxRef } from '../../kernels/reference/reference-ops.js';
import { ColumnParallelLinear } from '../../parallel/column-parallel-linear.js';
import { uploadReplicated } from '../../parallel/replicated.js';
import type { DeviceGroup } from '../../runtime/device-group.js';
import { TensorScope } from '../../runtime/scope.js';
import { ChainPlacement } from './chain-runtime.js';
import { type ChainStageKind, F32, type StageRuntime, type StageWeights, uniform } from './kind.js';

export const LAYER_NORM_EPS = 1e-5;

/**
 * The seed's final work on one device: the mean over each sequence's rows, a layer norm, an output
 * projection (a ColumnParallelLinear over a group of one) and a softmax: [tokens, in] -> [sequences, out].
 */
class AggregationHead {
  private readonly gamma: DistributedTensor;
  private readonly beta: DistributedTensor;
  private readonly projection: ColumnParallelLinear;

  constructor(
    ctx: CollectiveContext,
    readonly group: DeviceGroup,
    weights: StageWeights,
    inFeatures: number,
    outFeatures: number,
    private readonly label: string,
  ) {
    this.gamma = uploadReplicated(group, weights.gamma!, `${label}.gamma`);
    this.beta = uploadReplicated(group, weights.beta!, `${label}.beta`);
    this.projection = new ColumnParallelLinear(ctx, {
      group,
      weight: weights.w,
      bias: weights.b,
      inFeatures,
      outFeatures,
      label: `${label}.projection`,
    });
  }

  async forward(x: DistributedTensor, seqLen: number): Promise<DistributedTensor> {
    using scope = new TensorScope();
    const k = x.shards[0]!.device.kernels;
    const mean = scope.track(await k.meanRows(x.shards[0]!, seqLen, `${this.label}/mean`));
    const normed = scope.track(
      await k.layerNorm(
        mean,
        this.gamma.shards[0]!,
        this.beta.shards[0]!,
        LAYER_NORM_EPS,
        `${this.label}/norm`,
      ),
    );
    const rows = normed.shape[0]!;
    const input = new DistributedTensor(this.group, Replicate(), [rows, normed.shape[1]!], [normed]);
    const { output: logits } = await this.projection.forward(input);
    scope.track(logits);
    const out = await k.softmax(logits.shards[0]!, `${this.label}/out`);
    return new DistributedTensor(this.group, Replicate(), out.shape, [out]);
  }

  free(): void {
    this.gamma.free();
    this.beta.free();
    this.projection.free();
  }
}

/** The aggregation stage: on one device, or on data-parallel replicas that take microbatches in turn. */
export const aggregationKind: ChainStageKind = {
  kind: 'aggregation',
  names: ['aggregation'],
  fields: {},
  final: true,
  shape: (_spec, strategy, width) => ({
    inFeatures: width,
    outFeatures: strategy.model.output_size,
    accepts: ['replicate'],
  }),
  check(spec, path, add) {
    if (spec.tensor_parallel) {
      add({
        code: 'AGGREGATION_SPLIT',
        severity: 'error',
        path: `${path}.tensor_parallel`,
        message: 'the aggregation stage runs whole on each of its devices; it cannot be tensor-parallel',
        fix: 'use data_parallel replicas instead',
      });
    }
  },
  splitDimName: () => 'output_size',
  weightBytes: (plan) => (2 * plan.inFeatures + plan.inFeatures * plan.outFeatures + plan.outFeatures) * F32,
  activationWidths: (plan) => ({ input: plan.inFeatures, output: plan.outFeatures, outputRows: 'sequences' }),
  flops: (plan, _rank, tokens, seqLen) => {
    const sequences = tokens / seqLen;
    // Replicas take microbatches in turn: each does 1/replicas of them.
    const share = plan.mode === 'replicas' ? 1 / plan.devices.length : 1;
    return share * (tokens * plan.inFeatures + 2 * sequences * plan.inFeatures * plan.outFeatures);
  },
  weightLengths: (plan) => ({
    w: plan.inFeatures * plan.outFeatures,
    b: plan.outFeatures,
    gamma: plan.inFeatures,
    beta: plan.inFeatures,
  }),
  randomWeights: (plan, random) => ({
    w: uniform(plan.inFeatures * plan.outFeatures, 1 / Math.sqrt(plan.inFeatures), random),
    b: uniform(plan.outFeatures, 0.1, random),
    gamma: uniform(plan.inFeatures, 0.5, random).map((x) => 1 + x),
    beta: uniform(plan.inFeatures, 0.1, random),
  }),
  reference(plan, weights, state) {
    const groups = state.rows / state.seqLen;
    const mean = meanRowsRef(state.x, groups, state.seqLen, plan.inFeatures);
    const normed = layerNormRef(mean, groups, plan.inFeatures, weights.gamma!, weights.beta!, LAYER_NORM_EPS);
    const logits = matmulRef(normed, weights.w, groups, plan.outFeatures, plan.inFeatures, weights.b);
    return { ...state, x: softmaxRef(logits, groups, plan.outFeatures), rows: groups };
  },
  build(plan, group, weights, env): StageRuntime {
    const place = new ChainPlacement(plan, group);
    const heads = place
      .singles()
      .map(
        (g) => new AggregationHead(env.ctx, g, weights, plan.inFeatures, plan.outFeatures, plan.spec.name),
      );
    return {
      groupFor: (mb) => place.groupFor(mb),
      inputPlacement: () => place.inputPlacement(false),
      forward: (input, mb) => heads[place.replicaOf(mb)]!.forward(input!, env.seqLen),
      destroy: () => {
        for (const h of heads) h.free();
      },
    };
  },
};
