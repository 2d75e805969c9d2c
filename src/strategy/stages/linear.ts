import { z } from 'zod';
import type { DistributedTensor } from '../../collectives/layout.js';
import { matmulRef } from '../../kernels/reference/reference-ops.js';
import { ColumnParallelLinear } from '../../parallel/column-parallel-linear.js';
import { RowParallelLinear } from '../../parallel/row-parallel-linear.js';
import { ChainPlacement, whole } from './chain-runtime.js';
import { type ChainStageKind, F32, type StageRuntime, shardSize, uniform } from './kind.js';

const positive = z
  .number()
  .int()
  .positive()
  .max(1 << 30);

/** The linear stage's own fields of a stage object. */
export const linearFields = {
  out_features: positive.optional().describe('linear/expert: output width (default: model.ffn_size)'),
  activation: z.enum(['none', 'relu', 'gelu']).optional(),
};

/**
 * Y = act(X W + b), W [in, out]: the seed's linear (or "expert") stage. Column mode (split_dim 1) is
 * ColumnParallelLinear: W's output dim split, the output sharded on its last dim. Row mode (split_dim 0)
 * is RowParallelLinear: W's input dim split, the input read sharded on its last dim, the partial sums
 * left for the strategy's communication to add up, and the bias added once after that sum.
 */
export const linearKind: ChainStageKind = {
  kind: 'linear',
  names: ['linear', 'expert'],
  fields: linearFields,
  shape: (spec, strategy, width) => ({
    inFeatures: width,
    outFeatures: spec.out_features ?? strategy.model.ffn_size,
    accepts:
      spec.tensor_parallel?.mode === 'row'
        ? spec.tensor_parallel.input_is_parallel
          ? ['shard']
          : ['shard', 'replicate']
        : ['replicate'],
  }),
  check(spec, path, add) {
    if (spec.tensor_parallel?.mode === 'row' && (spec.activation ?? 'none') !== 'none') {
      add({
        code: 'ROW_ACTIVATION',
        severity: 'error',
        path: `${path}.activation`,
        message:
          'a row-parallel stage produces partial sums; a nonlinearity before the sum gives a wrong result',
        fix: "set activation to 'none' (apply it in the next stage) or use column mode",
      });
    }
  },
  splitDimName: (plan) => (plan.mode === 'column' ? 'out_features' : 'in_features'),
  weightBytes: (plan, rank) => {
    const shard = shardSize(plan, rank);
    return (
      (plan.mode === 'column' ? (plan.inFeatures + 1) * shard : shard * plan.outFeatures + plan.outFeatures) *
      F32
    );
  },
  activationWidths: (plan, rank) => ({
    input: plan.mode === 'row' ? shardSize(plan, rank) : plan.inFeatures,
    output: plan.mode === 'column' ? shardSize(plan, rank) : plan.outFeatures,
    outputRows: 'tokens',
  }),
  flops: (plan, rank, tokens) =>
    2 *
    tokens *
    plan.inFeatures *
    plan.outFeatures *
    (shardSize(plan, rank) / (plan.mode === 'column' ? plan.outFeatures : plan.inFeatures)),
  weightLengths: (plan) => ({ w: plan.inFeatures * plan.outFeatures, b: plan.outFeatures }),
  randomWeights: (plan, random) => ({
    w: uniform(plan.inFeatures * plan.outFeatures, 1 / Math.sqrt(plan.inFeatures), random),
    b: uniform(plan.outFeatures, 0.1, random),
  }),
  reference: (plan, weights, state) => ({
    ...state,
    x: matmulRef(
      state.x,
      weights.w,
      state.rows,
      plan.outFeatures,
      plan.inFeatures,
      weights.b,
      plan.activation,
    ),
  }),
  build(plan, group, weights, env): StageRuntime {
    const place = new ChainPlacement(plan, group);
    const layer = {
      weight: weights.w,
      bias: weights.b,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      label: plan.spec.name,
    };
    if (plan.mode === 'row') {
      // A communication always delivers the shards this split reads (see inputPlacement).
      const row = new RowParallelLinear(env.ctx, {
        ...layer,
        group,
        sizes: plan.shardSizes,
        inputIsParallel: true,
      });
      return {
        groupFor: () => group,
        inputPlacement: () => place.inputPlacement(false),
        forward: async (input) => (await row.forwardPartial(input!)).output,
        finishTransfer: (summed) => row.addBias(summed),
        destroy: () => row.free(),
      };
    }
    const modules =
      plan.mode === 'column'
        ? [
            new ColumnParallelLinear(env.ctx, {
              ...layer,
              group,
              sizes: plan.shardSizes,
              activation: plan.activation,
            }),
          ]
        : place
            .singles()
            .map(
              (g) => new ColumnParallelLinear(env.ctx, { ...layer, group: g, activation: plan.activation }),
            );
    return {
      groupFor: (mb) => place.groupFor(mb),
      inputPlacement: () => place.inputPlacement(false),
      async forward(input, mb): Promise<DistributedTensor> {
        const { output } = await modules[place.replicaOf(mb)]!.forward(input!);
        return plan.mode === 'column' ? output : whole(output);
      },
      destroy: () => {
        for (const m of modules) m.free();
      },
    };
  },
};
