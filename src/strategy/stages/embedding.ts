import { shardFromHost } from '../../collectives/host-io.js';
import { type DistributedTensor, Replicate } from '../../collectives/layout.js';
import { embeddingRef } from '../../kernels/reference/reference-ops.js';
import { ColumnParallelEmbedding, VocabParallelEmbedding } from '../../parallel/embedding.js';
import { ChainPlacement, whole } from './chain-runtime.js';
import { type ChainStageKind, F32, type StageRuntime, shardSize, uniform } from './kind.js';

/**
 * Token ids [tokens] -> [tokens, hidden] from a table [vocab, hidden]. Column mode splits the hidden dim
 * (ColumnParallelEmbedding: the output is sharded on its last dim); row mode splits the vocabulary
 * (VocabParallelEmbedding: ids outside a device's rows give zeros, and the partial rows are left for the
 * strategy's communication to sum).
 */
export const embeddingKind: ChainStageKind = {
  kind: 'embedding',
  names: ['embedding'],
  fields: {},
  readsIds: true,
  shape: (_spec, strategy) => ({
    inFeatures: strategy.model.vocab_size,
    outFeatures: strategy.model.hidden_size,
    accepts: ['replicate'],
  }),
  check: () => {},
  splitDimName: (plan) => (plan.mode === 'column' ? 'hidden_size' : 'vocab_size'),
  weightBytes: (plan, rank) =>
    (plan.mode === 'column' ? plan.inFeatures : plan.outFeatures) * shardSize(plan, rank) * F32,
  activationWidths: (plan, rank) => ({
    input: 1,
    output: plan.mode === 'column' ? shardSize(plan, rank) : plan.outFeatures,
    outputRows: 'tokens',
  }),
  // A gather: one read and one write per output element; counted so a device with only lookups is not 0.
  flops: (plan, rank, tokens) => tokens * (plan.mode === 'column' ? shardSize(plan, rank) : plan.outFeatures),
  weightLengths: (plan) => ({ w: plan.inFeatures * plan.outFeatures }),
  randomWeights: (plan, random) => ({ w: uniform(plan.inFeatures * plan.outFeatures, 1, random) }),
  reference: (plan, weights, state) => ({
    ...state,
    x: embeddingRef(weights.w, plan.outFeatures, plan.inFeatures, state.ids),
    rows: state.ids.length,
  }),
  build(plan, group, weights, env): StageRuntime {
    const place = new ChainPlacement(plan, group);
    const table = {
      table: weights.w,
      vocab: plan.inFeatures,
      hidden: plan.outFeatures,
      label: plan.spec.name,
    };
    const split = plan.mode === 'column' || plan.mode === 'row';
    const modules = split
      ? [
          plan.mode === 'column'
            ? new ColumnParallelEmbedding(env.ctx, { ...table, group, sizes: plan.shardSizes })
            : new VocabParallelEmbedding(env.ctx, { ...table, group, sizes: plan.shardSizes }),
        ]
      : place.singles().map((g) => new ColumnParallelEmbedding(env.ctx, { ...table, group: g }));
    return {
      groupFor: (mb) => place.groupFor(mb),
      inputPlacement: () => place.inputPlacement(true),
      async forward(_input, mb): Promise<DistributedTensor> {
        const on = place.groupFor(mb);
        const ids = env.ids[mb]!;
        const onGroup = shardFromHost(on, ids, [ids.length], Replicate(), `${plan.spec.name}/mb${mb}/ids`);
        try {
          const module = modules[place.replicaOf(mb)]!;
          if (module instanceof VocabParallelEmbedding) return await module.forwardPartial(onGroup);
          const { output } = await module.forward(onGroup);
          return split ? output : whole(output);
        } finally {
          onGroup.free();
        }
      },
      destroy: () => {
        for (const m of modules) m.free();
      },
    };
  },
};
