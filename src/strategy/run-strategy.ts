import { CollectiveContext } from '../collectives/context.js';
import { ParallelError } from '../errors.js';
import type { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import type { Device, KernelSpan } from '../runtime/device.js';
import { type BackendChoice, DeviceGroup } from '../runtime/device-group.js';
import { median } from '../stats.js';
import {
  type ExecutionInput,
  type ExecutionResult,
  executePipelined,
  executeSequential,
} from './executor.js';
import { type Finding, hasErrors } from './findings.js';
import { measurePipeline, type PipelineMeasurement } from './measure.js';
import { type DeviceMemory, estimateMemory } from './memory-estimate.js';
import { randomIds, randomWeights, referenceForward, type StageWeights } from './model-weights.js';
import { buildSchedule, dryRun, pipelineElements, type Schedule } from './schedule.js';
import type { Strategy } from './schema.js';
import { StageRuntime } from './sharded-model.js';
import { chromeTrace } from './trace.js';
import { validateStrategy } from './validate.js';

export interface RunOptions {
  readonly microbatches?: number;
  readonly memoryCapBytes?: number;
  readonly backend?: BackendChoice;
  readonly adapters?: readonly string[];
  readonly seed?: number;
  /** Weights to use instead of random ones, one entry per stage (see `randomWeights` for the layout). */
  readonly weights?: readonly StageWeights[];
  readonly tuningCache?: TuningCache;
  /** Also run the microbatches one after another, with no overlap, for comparison (default true). */
  readonly sequentialBaseline?: boolean;
  /** Measured runs of each kind, alternating (default 3). */
  readonly repeats?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface StrategyRun {
  readonly strategy: Strategy;
  readonly findings: readonly Finding[];
  readonly schedule: Schedule;
  readonly memoryEstimate: readonly DeviceMemory[];
  readonly backend: string;
  /** The backend asked for: `auto` that ran on gpujs means no WebGPU adapter answered. */
  readonly requestedBackend: BackendChoice;
  readonly adapter: string;
  readonly isSoftwareAdapter: boolean;
  readonly hasDeviceTimestamps: boolean;
  readonly pipelined: PipelineMeasurement;
  /** Median wall time of the one-by-one baseline runs. */
  readonly sequentialWallMs: number | null;
  /** How many pipelined (and baseline) runs were measured; the figures come from the median one. */
  readonly repeats: number;
  /** Largest |sharded - reference| over every output of every measured run. */
  readonly maxAbsError: number;
  readonly tolerance: number;
  readonly trace: unknown;
}

async function takeAllSpans(devices: readonly Device[]): Promise<Map<Device, KernelSpan[]>> {
  const map = new Map<Device, KernelSpan[]>();
  for (const d of devices) map.set(d, await d.takeSpans());
  return map;
}

/**
 * Validates the strategy, plans its schedule (checked by a dry run before any device opens), runs it on
 * real devices (a warm-up microbatch, the pipelined run, and the one-by-one baseline), and measures it.
 */
export async function runStrategy(input: unknown, options: RunOptions = {}): Promise<StrategyRun> {
  const validation = validateStrategy(input, {
    memoryCapBytes: options.memoryCapBytes,
    microbatches: options.microbatches,
  });
  if (!validation.strategy || hasErrors(validation.findings)) {
    const first = validation.findings.find((f) => f.severity === 'error')!;
    throw Object.assign(
      new ParallelError('STRATEGY', `the strategy is not valid: ${first.message}`, {
        where: first.path,
        fix: first.fix,
      }),
      { findings: validation.findings },
    );
  }
  const strategy = validation.strategy;
  const plans = validation.plans;
  const m = strategy.batch.microbatches;
  const elements = pipelineElements(plans, strategy.communications);
  const schedule = buildSchedule(elements, m);
  dryRun(schedule);

  const seed = options.seed ?? strategy.seed ?? 1;
  const weights = options.weights ?? randomWeights(plans, seed);
  const ids = randomIds(strategy, m, seed);
  const group = await DeviceGroup.open({
    count: strategy.hardware.device_count,
    backend: options.backend ?? 'auto',
    adapters: options.adapters,
    memoryBudgetBytes: strategy.hardware.memory_per_device_bytes,
    tuningCache: options.tuningCache,
  });
  const ctx = new CollectiveContext({ reduceOn: 'host' });
  const runtimes = new Map<number, StageRuntime>();
  try {
    let previousBias: Float32Array | undefined;
    for (const element of elements) {
      if (element.kind !== 'compute') continue;
      const plan = element.stage;
      runtimes.set(
        element.index,
        new StageRuntime(plan, group.select(plan.devices), weights[plan.index]!, previousBias),
      );
      previousBias = StageRuntime.rowBias(plan, weights[plan.index]!);
    }
    const repeats = options.repeats ?? 3;
    const total = m * repeats * (options.sequentialBaseline === false ? 1 : 2);
    let done = 0;
    const base: ExecutionInput = {
      ctx,
      schedule,
      runtimes,
      ids,
      seqLen: strategy.model.seq_len,
      onProgress: () => options.onProgress?.(++done, total),
    };
    // A whole pipelined pass, unmeasured: it compiles every pipeline and grows the staging pools to what
    // the most transfers in flight need. A fresh buffer's first use costs lavapipe far more than its later
    // ones, so warming with one microbatch left the pipelined run (first) paying what the baseline did not.
    await executePipelined({ ...base, onProgress: undefined });
    await group.sync();

    for (const d of group.devices) {
      await d.takeSpans();
      d.enableProfiling(true);
    }
    // Pipelined and one-by-one runs alternate, `repeats` times each, so drift on a shared machine hits
    // both alike; the report uses the pipelined run of median wall time and the baseline's median.
    const pipelinedRuns: { run: ExecutionResult; spans: Map<Device, KernelSpan[]> }[] = [];
    const sequentialRuns: ExecutionResult[] = [];
    for (let r = 0; r < repeats; r++) {
      const run = await executePipelined(base);
      await group.sync();
      pipelinedRuns.push({ run, spans: await takeAllSpans(group.devices) });
      if (options.sequentialBaseline !== false) {
        sequentialRuns.push(await executeSequential(base));
        await takeAllSpans(group.devices);
      }
    }
    const wallOf = (run: ExecutionResult) => (run.endNs - run.startNs) / 1e6;
    pipelinedRuns.sort((a, b) => wallOf(a.run) - wallOf(b.run));
    const { run: pipelinedRun, spans } = pipelinedRuns[(pipelinedRuns.length - 1) >> 1]!;
    const sequentialWallMs = sequentialRuns.length > 0 ? median(sequentialRuns.map(wallOf)) : null;
    for (const d of group.devices) d.enableProfiling(false);

    let maxAbsError = 0;
    ids.forEach((mbIds, mb) => {
      const want = referenceForward(plans, weights, mbIds, strategy.model.seq_len);
      for (const got of [...pipelinedRuns.map((p) => p.run), ...sequentialRuns].map((r) => r.outputs[mb])) {
        if (!got) continue;
        for (let i = 0; i < want.length; i++)
          maxAbsError = Math.max(maxAbsError, Math.abs(got[i]! - want[i]!));
      }
    });
    const first = group.devices[0]!;
    return {
      strategy,
      findings: validation.findings,
      schedule,
      memoryEstimate: estimateMemory(strategy, plans),
      backend: group.backend,
      requestedBackend: options.backend ?? 'auto',
      adapter: first.adapter.name,
      isSoftwareAdapter: first.adapter.isSoftware,
      hasDeviceTimestamps: first.hasDeviceTimestamps,
      pipelined: measurePipeline(pipelinedRun, spans, elements, m, strategy.batch.batch_size),
      sequentialWallMs,
      repeats,
      maxAbsError,
      tolerance: 1e-4,
      trace: chromeTrace(pipelinedRun, spans, elements),
    };
  } finally {
    for (const r of runtimes.values()) r.destroy();
    ctx.destroy();
    group.destroy();
  }
}
