/// <reference types="@webgpu/types" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
/**
 * webgpu-parallel: run tensor- and pipeline-parallel strategies for real on WebGPU devices (or gpu.js where
 * there is none) and report what was measured. This file is the package's one public entry point; the
 * runtime's plumbing is in `webgpu-parallel/internals` (src/internals.ts), outside the API.
 */

export * from './collectives/index.js';
export * from './distributed/index.js';
export { type ErrorCode, isParallelError, ParallelError, type ParallelErrorOptions } from './errors.js';
export type {
  Activation,
  ArgmaxResult,
  BatchedMatmulOptions,
  CausalSoftmaxOptions,
  EmbeddingOptions,
  Kernels,
  MatmulOptions,
  RopeOptions,
  RouterTopKResult,
} from './kernels/kernels.js';
export * as reference from './kernels/reference/reference-ops.js';
export * as transformerReference from './kernels/reference/transformer-ops.js';
export { autotuneMatmul, type TuneResult } from './kernels/webgpu/autotune.js';
export { Checkpoint } from './models/checkpoint/checkpoint.js';
export { SafetensorsFile, writeSafetensors } from './models/checkpoint/safetensors.js';
export {
  type GenerateOptions,
  type GenerationResult,
  generate,
  type PhaseTiming,
} from './models/generate.js';
export { LlamaModel, type LoadOptions, type SequenceCache } from './models/llama/llama-model.js';
export { type LlamaConfig, parseLlamaConfig, readLlamaConfig, toHfConfig } from './models/llama-config.js';
export {
  llamaParameterShapes,
  preset,
  presetNames,
  randomLlamaWeights,
  writeRandomCheckpoint,
} from './models/presets.js';
export { describePlan, gridPlan, type ShardingPlan, type StageSpec } from './models/sharding-plan.js';
export * from './parallel/index.js';
export { CpuDevice } from './runtime/cpu-device.js';
export type { AdapterSummary, BackendName, Device, KernelSpan } from './runtime/device.js';
export { type BackendChoice, DeviceGroup, type OpenDeviceGroupOptions } from './runtime/device-group.js';
export { MemoryLedger } from './runtime/memory-ledger.js';
export { type Freeable, TensorScope, tidy } from './runtime/scope.js';
export { describeSystem, type SystemInfo } from './runtime/system-info.js';
export { type DType, type HostArray, type Shape, Tensor } from './runtime/tensor.js';
export { type CheckOptions, checkStrategy, type StrategyCheck } from './strategy/check-strategy.js';
export { type Finding, formatFindings, hasErrors, type Severity } from './strategy/findings.js';
export type { ImproveResult } from './strategy/improve.js';
export { improveStrategy } from './strategy/improve-run.js';
export { type PipelineMeasurement, unionMs } from './strategy/measure.js';
export { estimateMemory } from './strategy/memory-estimate.js';
export { planStages, type StagePlan } from './strategy/model-plan.js';
export { runStrategyOnRanks } from './strategy/rank-run.js';
export { recommendations } from './strategy/recommend.js';
export { reportJson, reportMarkdown, verdictOf } from './strategy/report.js';
export { type RunOptions, runStrategy, type StrategyRun } from './strategy/run-strategy.js';
export {
  buildSchedule,
  dryRun,
  formatScheduleGrid,
  pipelineElements,
  type Schedule,
} from './strategy/schedule.js';
export { type Strategy, StrategySchema, strategyJsonSchema } from './strategy/schema.js';
export { parseStrategyText, type ValidationResult, validateStrategy } from './strategy/validate.js';
