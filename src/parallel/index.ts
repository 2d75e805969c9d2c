export {
  type AttentionConfig,
  type AttentionStep,
  type LayerKv,
  ParallelAttention,
  type SequenceRows,
} from './attention.js';
export {
  ColumnParallelLinear,
  type ColumnParallelLinearOptions,
  type LayerOutput,
} from './column-parallel-linear.js';
export {
  ColumnParallelEmbedding,
  type ParallelEmbeddingOptions,
  VocabParallelEmbedding,
} from './embedding.js';
export {
  type ExpertGroupInfo,
  ExpertLoad,
  type ExpertLoadSummary,
  type ExpertMove,
  type MoeStep,
  type StageLoad,
} from './expert-load.js';
export { type ExpertPlacement, expertGroups, placeExperts } from './expert-placement.js';
export { expertCapacity, planRouting, type RoutingPlan } from './expert-routing.js';
export { balancedSizes, type RankHeads, splitHeads } from './head-split.js';
export { type LmHeadOptions, VocabParallelHead } from './lm-head.js';
export {
  loadColumnParallel,
  loadReplicated,
  loadRowParallel,
  loadRowShards,
  type Span,
  spansOf,
} from './load-shards.js';
export { ParallelGatedMlp } from './mlp.js';
export { type Module, type Parameter, stateDict } from './module.js';
export { MixtureOfExperts, type MoeOptions, type MoeShape } from './moe.js';
export { addBiasOnce, uploadReplicated } from './replicated.js';
export { ReplicatedRmsNorm } from './rms-norm.js';
export { RowParallelLinear, type RowParallelLinearOptions } from './row-parallel-linear.js';
export { ShardReader } from './shard-reader.js';
export { addShards, mapShards } from './shards.js';
export { MemoryWeights, type WeightReader, type WeightSlice } from './weight-reader.js';
export { checkSameGroup, type LinearLayerOptions, shardWeight } from './weights.js';
