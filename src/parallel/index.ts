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
export { addBiasOnce, uploadReplicated } from './replicated.js';
export { RowParallelLinear, type RowParallelLinearOptions } from './row-parallel-linear.js';
export { checkSameGroup, type LinearLayerOptions, shardWeight } from './weights.js';
