import { ParallelError } from '../errors.js';
import type { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import type { ExpertLoadSummary } from '../parallel/expert-load.js';
import type { BackendChoice, DeviceGroup } from '../runtime/device-group.js';
import { hostCores } from '../runtime/host-info.js';
import { prepareChain } from './chain-prepare.js';
import { type CheckOptions, checkStrategy } from './check-strategy.js';
import { type Finding, hasErrors } from './findings.js';
import type { PipelineMeasurement } from './measure.js';
import { type MeasuredRuns, measureRuns } from './measure-runs.js';
import { type DeviceMemory, estimateMemory } from './memory-estimate.js';
import type { StagePlan } from './model-plan.js';
import { runModelStrategy } from './model-run.js';
import { referenceForward, type StageWeights } from './model-weights.js';
import type { Schedule } from './schedule.js';
import type { ModelStrategy, Strategy } from './schema.js';

export interface RunOptions {
  readonly microbatches?: number;
  readonly memoryCapBytes?: number;
  readonly backend?: BackendChoice;
  readonly adapters?: readonly string[];
  readonly seed?: number;
  /** Chain strategies: weights instead of random ones, one entry per stage (see `randomWeights`). */
  readonly weights?: readonly StageWeights[];
  readonly tuningCache?: TuningCache;
  /** Also run the microbatches one after another, with no overlap, for comparison (default true). */
  readonly sequentialBaseline?: boolean;
  /** Measured runs of each kind, alternating (default 3). */
  readonly repeats?: number;
  /** The folder a model strategy's relative checkpoint path is read from (the strategy file's). */
  readonly baseDir?: string;
  /**
   * Model strategies: check the logits against the unsharded run and the float64 reference (default
   * true). Off only to time candidates quickly (`improve` screens with it off, then checks its pick).
   */
  readonly checkOutputs?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
  /** Each microbatch's output of the first measured run (chains: the last stage's; models: the logits). */
  readonly onOutputs?: (outputs: readonly Float32Array[]) => void;
  /** Across ranks: called once this rank has opened its devices, before its first run. */
  readonly onDevicesOpened?: (devices: readonly number[]) => void;
}

/** How the run's devices share the machine: what tells contention from imbalance. */
export interface HostSharing {
  readonly devices: number;
  /** Every device is a logical device on the same adapter. */
  readonly oneAdapter: boolean;
  /** That adapter computes on the host's CPU (lavapipe, SwiftShader): the devices share its cores. */
  readonly software: boolean;
  readonly hostCores: number;
}

/** One comparison of the run's outputs with a reference. */
export interface OutputCheck {
  /** What was compared: "the float64 CPU reference", "the unsharded run on one device", ... */
  readonly against: string;
  readonly maxAbsError: number;
  readonly tolerance: number;
  /** The largest |reference value|, where the tolerance is relative to it. */
  readonly scale?: number;
  readonly passed: boolean;
}

/** Model strategies: the memory the ledger measured per device, beside the estimate. */
export interface MeasuredMemory {
  readonly device: number;
  /** Bytes in use once the weights were loaded, then once the KV caches were allocated. */
  readonly weights: number;
  readonly kvCache: number;
  readonly peak: number;
}

export interface StrategyRun {
  readonly family: 'chain' | 'model';
  readonly strategy: Strategy | ModelStrategy;
  readonly findings: readonly Finding[];
  readonly schedule: Schedule;
  readonly memoryEstimate: readonly DeviceMemory[];
  readonly backend: string;
  /** The backend asked for: `auto` that ran on gpujs means no WebGPU adapter answered. */
  readonly requestedBackend: BackendChoice;
  readonly adapter: string;
  readonly isSoftwareAdapter: boolean;
  readonly hasDeviceTimestamps: boolean;
  readonly sharing: HostSharing;
  /** Tokens per sequence. */
  readonly seqLen: number;
  readonly pipelined: PipelineMeasurement;
  /** Every pipelined run, measured alike: the spread across repeats. */
  readonly repeatsMeasured: readonly PipelineMeasurement[];
  /** Median wall time of the one-by-one baseline runs, and each of them. */
  readonly sequentialWallMs: number | null;
  readonly sequentialWallMsPerRepeat: readonly number[];
  /** How many pipelined (and baseline) runs were measured; the figures come from the median one. */
  readonly repeats: number;
  /** The comparisons of the outputs with references; the run's verdict needs every one to pass. */
  readonly checks: readonly OutputCheck[];
  /** The worst check's error and its tolerance (the first check's when all pass). */
  readonly maxAbsError: number;
  readonly tolerance: number;
  /** Model strategies: what was run, and what the ledgers measured. */
  readonly model?: {
    readonly description: string;
    readonly layers: number;
    readonly experts?: number;
    readonly plan: string;
  };
  readonly memoryMeasured?: readonly MeasuredMemory[];
  /** Mixtral: the routing counts over the measured runs, and the moves that would even them. */
  readonly expertLoad?: ExpertLoadSummary;
  /** A run over several processes (`launch -- run`): which rank owned which devices, and their clocks. */
  readonly ranks?: RanksSummary;
  readonly trace: unknown;
}

/** How a run over ranks was laid out, and how well their clocks were put on rank 0's. */
export interface RanksSummary {
  readonly worldSize: number;
  /** Device ids per rank. */
  readonly devices: readonly (readonly number[])[];
  /** Each rank's clock offset to rank 0 and what it can be off by (half the best ping's round trip). */
  readonly clocks: readonly {
    readonly rank: number;
    readonly offsetMs: number;
    readonly rttMs: number;
    readonly residualMs: number;
  }[];
  /** The largest residual: every rank's times in the report and trace are within it of rank 0's clock. */
  readonly clockResidualMs: number;
}

/** Validation errors as the typed error `runStrategy` throws, with every finding attached. */
export function strategyError(findings: readonly Finding[]): ParallelError {
  const first = findings.find((f) => f.severity === 'error')!;
  return Object.assign(
    new ParallelError('STRATEGY', `the strategy is not valid: ${first.message}`, {
      where: first.path,
      fix: first.fix,
    }),
    { findings },
  );
}

/** How devices on these adapters (one entry a device) share the machine. */
export function hostSharing(adapters: readonly { name: string; isSoftware: boolean }[]): HostSharing {
  const names = new Set(adapters.map((a) => a.name));
  return {
    devices: adapters.length,
    oneAdapter: names.size === 1 && adapters.length > 1,
    software: adapters.every((a) => a.isSoftware),
    hostCores: hostCores(),
  };
}

/** What a run reports of its measured runs (their outputs go to the checks, not the report). */
export function measuredFigures({ outputs: _, ...figures }: MeasuredRuns) {
  return figures;
}

/** The figures every run reports from its group and its measured runs. */
export function runFigures(group: DeviceGroup, measured: MeasuredRuns, backend: BackendChoice) {
  const first = group.devices[0]!;
  return {
    backend: group.backend,
    requestedBackend: backend,
    adapter: first.adapter.name,
    isSoftwareAdapter: first.adapter.isSoftware,
    hasDeviceTimestamps: first.hasDeviceTimestamps,
    sharing: hostSharing(group.devices.map((d) => d.adapter)),
    ...measuredFigures(measured),
  };
}

/** The worst of the checks, as the run's headline error. */
export function worstCheck(checks: readonly OutputCheck[]): { maxAbsError: number; tolerance: number } {
  const failed = checks.find((c) => !c.passed);
  const pick =
    failed ?? checks.reduce((a, b) => (b.maxAbsError / b.tolerance > a.maxAbsError / a.tolerance ? b : a));
  return { maxAbsError: pick.maxAbsError, tolerance: pick.tolerance };
}

/**
 * Validates the strategy (either form), plans its schedule (checked by a dry run before any device
 * opens), runs it on real devices (a warm-up pass, the pipelined runs and the one-by-one baseline),
 * checks its outputs against the reference, and measures it.
 */
export async function runStrategy(input: unknown, options: RunOptions = {}): Promise<StrategyRun> {
  const checkOptions: CheckOptions = {
    memoryCapBytes: options.memoryCapBytes,
    microbatches: options.microbatches,
    baseDir: options.baseDir,
  };
  const checked = checkStrategy(input, checkOptions);
  if (!checked.strategy || hasErrors(checked.findings)) throw strategyError(checked.findings);
  if (checked.family === 'model') return runModelStrategy(checked, options);
  return runChainStrategy(checked.strategy, checked.plans, checked.findings, options);
}

/**
 * A chain's outputs against the unsharded CPU reference, every microbatch of every measured run; a
 * microbatch whose output never arrived fails the check.
 */
export function chainChecks(
  plans: readonly StagePlan[],
  weights: readonly StageWeights[],
  ids: readonly Uint32Array[],
  seqLen: number,
  outputs: readonly (readonly (Float32Array | undefined)[])[],
): OutputCheck[] {
  let maxAbsError = 0;
  ids.forEach((mbIds, mb) => {
    const want = referenceForward(plans, weights, mbIds, seqLen);
    for (const got of outputs.map((o) => o[mb])) {
      if (!got) {
        maxAbsError = Number.POSITIVE_INFINITY;
        continue;
      }
      for (let i = 0; i < want.length; i++) maxAbsError = Math.max(maxAbsError, Math.abs(got[i]! - want[i]!));
    }
  });
  const tolerance = 1e-4;
  return [
    { against: 'the unsharded CPU reference', maxAbsError, tolerance, passed: maxAbsError <= tolerance },
  ];
}

/** The seed's chain: each stage built by its kind from the library's modules, checked against the reference. */
async function runChainStrategy(
  strategy: Strategy,
  plans: readonly StagePlan[],
  findings: readonly Finding[],
  options: RunOptions,
): Promise<StrategyRun> {
  const devices = Array.from({ length: strategy.hardware.device_count }, (_, d) => d);
  const chain = await prepareChain(strategy, plans, options, devices);
  const { group, ctx, elements, schedule, runtimes, weights, ids } = chain;
  try {
    const measured = await measureRuns(
      { group, ctx, elements, schedule, runtimes, batchSize: strategy.batch.batch_size },
      {
        repeats: options.repeats,
        sequentialBaseline: options.sequentialBaseline,
        onProgress: options.onProgress,
      },
    );
    options.onOutputs?.(measured.outputs[0]!);
    const checks = chainChecks(plans, weights, ids, strategy.model.seq_len, measured.outputs);
    const { maxAbsError, tolerance } = checks[0]!;
    return {
      family: 'chain',
      strategy,
      findings,
      schedule,
      memoryEstimate: estimateMemory(strategy, plans),
      seqLen: strategy.model.seq_len,
      ...runFigures(group, measured, chain.backend),
      checks,
      maxAbsError,
      tolerance,
    };
  } finally {
    chain.destroy();
  }
}
