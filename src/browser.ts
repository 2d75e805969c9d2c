/// <reference types="@webgpu/types" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
/**
 * webgpu-parallel in the browser: the entry point of the browser bundle (web/build.ts), for pages of one's
 * own. The same library as src/index.ts less what needs Node: the distributed runtime (sockets, processes),
 * checkpoint folders (files) and gpu.js (Node's fallback); devices come from navigator.gpu.
 */

export * from './collectives/index.js';
export { type ErrorCode, isParallelError, ParallelError, type ParallelErrorOptions } from './errors.js';
export type { Kernels } from './kernels/kernels.js';
export * as reference from './kernels/reference/reference-ops.js';
export * as transformerReference from './kernels/reference/transformer-ops.js';
export { type GenerateOptions, type GenerationResult, generate } from './models/generate.js';
export { LlamaModel, type LoadOptions } from './models/llama/llama-model.js';
export type { LlamaConfig } from './models/llama-config.js';
export { llamaParameterShapes, preset, presetNames, randomLlamaWeights } from './models/preset-configs.js';
export { describePlan, gridPlan, type ShardingPlan, type StageSpec } from './models/sharding-plan.js';
export * from './parallel/index.js';
export {
  runHtml,
  TIMELINE_SCRIPT,
  TIMELINE_STYLE,
  type TimelineData,
  timelineData,
  timelineHtml,
  timelineSection,
  timelineSvg,
} from './report/timeline-html.js';
export type { AdapterSummary, BackendName, Device, KernelSpan } from './runtime/device.js';
export { type BackendChoice, DeviceGroup, type OpenDeviceGroupOptions } from './runtime/device-group.js';
export { type Freeable, TensorScope, tidy } from './runtime/scope.js';
export { type DType, type HostArray, type Shape, Tensor } from './runtime/tensor.js';
export { type Finding, formatFindings, hasErrors, type Severity } from './strategy/findings.js';
export { reportJson, reportMarkdown, verdictOf } from './strategy/report.js';
export { type RunOptions, runStrategy, type StrategyRun } from './strategy/run-strategy.js';
export { type Strategy, StrategySchema } from './strategy/schema.js';
export { parseStrategyText, type ValidationResult, validateStrategy } from './strategy/validate.js';
