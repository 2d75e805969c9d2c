/**
 * webgpu-parallel/internals: the runtime's plumbing, for the bench, for tuning tools and for people who
 * study how the devices behave. Not the library's API: these names may change between any two versions.
 */

export { type MatmulVariant, matmulCatalog, shapeClass } from './kernels/webgpu/matmul-variants.js';
export { TuningCache } from './kernels/webgpu/tuning-cache.js';
export { BindGroupCache } from './runtime/webgpu/bind-group-cache.js';
export { BATCH_MAX_PASSES, CommandBatch } from './runtime/webgpu/command-batch.js';
export { type PollStats, pollStats } from './runtime/webgpu/dawn-poll.js';
export { type Dispatch, GpuDevice } from './runtime/webgpu/gpu-device.js';
export { ParamTable } from './runtime/webgpu/param-table.js';
