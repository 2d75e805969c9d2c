import type { CollectiveContext } from '../collectives/context.js';
import type { Device, KernelSpan } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { median } from '../stats.js';
import {
  type ExecutionInput,
  type ExecutionResult,
  executePipelined,
  executeSequential,
  type Transport,
} from './executor.js';
import { type MeasuredDevice, measurePipeline, type PipelineMeasurement } from './measure.js';
import type { PipelineElement, Schedule } from './schedule.js';
import type { StageRuntime } from './stages/kind.js';
import { chromeTrace } from './trace.js';

/** A strategy built on its devices, ready to run: what either form of strategy file becomes. */
export interface PreparedRun {
  readonly group: DeviceGroup;
  readonly ctx: CollectiveContext;
  readonly elements: readonly PipelineElement[];
  readonly schedule: Schedule;
  readonly runtimes: ReadonlyMap<number, StageRuntime>;
  readonly batchSize: number;
  /** Across ranks: where communications go, and this rank's number (see `executor.ts`). */
  readonly transport?: Transport;
  readonly rank?: number;
}

export interface MeasureOptions {
  /** Measured runs of each kind, alternating (default 3). */
  readonly repeats?: number;
  /** Also run the microbatches one after another, with no overlap (default true). */
  readonly sequentialBaseline?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
  /** Called after the warm-up, before the measured runs (to reset counters such as the expert load). */
  readonly afterWarmUp?: () => void;
  /** Awaited before every run: across ranks, a barrier, so that every rank starts each run together. */
  readonly beforeRun?: () => Promise<void>;
}

/** What the measured runs recorded, before any figure is worked out from it. */
export interface RecordedRuns {
  readonly pipelined: readonly {
    readonly run: ExecutionResult;
    readonly spans: ReadonlyMap<MeasuredDevice, readonly KernelSpan[]>;
  }[];
  readonly sequential: readonly ExecutionResult[];
  readonly repeats: number;
}

export interface MeasuredRuns {
  /** The pipelined run of median wall time, measured. */
  readonly pipelined: PipelineMeasurement;
  /** Every pipelined run, measured alike, in the order they ran: the spread across repeats. */
  readonly repeatsMeasured: readonly PipelineMeasurement[];
  readonly sequentialWallMs: number | null;
  readonly sequentialWallMsPerRepeat: readonly number[];
  readonly repeats: number;
  /** Every measured run's output of each microbatch (pipelined runs, then baseline runs). */
  readonly outputs: readonly (readonly Float32Array[])[];
  readonly trace: unknown;
}

async function takeAllSpans(devices: readonly Device[]): Promise<Map<Device, KernelSpan[]>> {
  const map = new Map<Device, KernelSpan[]>();
  for (const d of devices) map.set(d, await d.takeSpans());
  return map;
}

/**
 * Runs a prepared strategy: a whole pipelined pass unmeasured (it compiles every pipeline and grows the
 * staging pools to what the most transfers in flight need: a fresh buffer's first use costs lavapipe far
 * more than its later ones), then pipelined and one-by-one runs alternating, `repeats` times each, so
 * drift on a shared machine hits both alike. The figures come from the pipelined run of median wall time.
 */
export async function measureRuns(
  prepared: PreparedRun,
  options: MeasureOptions = {},
): Promise<MeasuredRuns> {
  const recorded = await recordRuns(prepared, options);
  return summarizeRuns(recorded, prepared.elements, prepared.schedule.microbatches, prepared.batchSize);
}

/** The runs of `measureRuns`, recorded: every pipelined run's spans, every baseline run's times. */
export async function recordRuns(prepared: PreparedRun, options: MeasureOptions = {}): Promise<RecordedRuns> {
  const { group, schedule } = prepared;
  const m = schedule.microbatches;
  const repeats = options.repeats ?? 3;
  const baseline = options.sequentialBaseline !== false;
  const total = m * repeats * (baseline ? 2 : 1);
  let done = 0;
  const base: ExecutionInput = {
    ctx: prepared.ctx,
    schedule,
    runtimes: prepared.runtimes,
    transport: prepared.transport,
    rank: prepared.rank,
    onProgress: () => options.onProgress?.(++done, total),
  };
  await options.beforeRun?.();
  await executePipelined({ ...base, onProgress: undefined });
  await group.sync();
  options.afterWarmUp?.();
  for (const d of group.devices) {
    await d.takeSpans();
    d.enableProfiling(true);
  }
  const pipelinedRuns: { run: ExecutionResult; spans: Map<Device, KernelSpan[]> }[] = [];
  const sequentialRuns: ExecutionResult[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      await options.beforeRun?.();
      const run = await executePipelined(base);
      await group.sync();
      pipelinedRuns.push({ run, spans: await takeAllSpans(group.devices) });
      if (baseline) {
        await options.beforeRun?.();
        sequentialRuns.push(await executeSequential(base));
        await takeAllSpans(group.devices);
      }
    }
  } finally {
    for (const d of group.devices) d.enableProfiling(false);
  }
  return { pipelined: pipelinedRuns, sequential: sequentialRuns, repeats };
}

/** The figures of recorded runs: each pipelined run measured, the median one's trace. */
export function summarizeRuns(
  recorded: RecordedRuns,
  elements: readonly PipelineElement[],
  m: number,
  batchSize: number,
): MeasuredRuns {
  const { pipelined: pipelinedRuns, sequential: sequentialRuns, repeats } = recorded;
  const wallOf = (run: ExecutionResult) => (run.endNs - run.startNs) / 1e6;
  const measured = pipelinedRuns.map((p) => measurePipeline(p.run, p.spans, elements, m, batchSize));
  const order = measured.map((_, i) => i).sort((a, b) => measured[a]!.wallMs - measured[b]!.wallMs);
  const mid = order[(order.length - 1) >> 1]!;
  const sequentialWalls = sequentialRuns.map(wallOf);
  return {
    pipelined: measured[mid]!,
    repeatsMeasured: measured,
    sequentialWallMs: sequentialWalls.length > 0 ? median(sequentialWalls) : null,
    sequentialWallMsPerRepeat: sequentialWalls,
    repeats,
    outputs: [...pipelinedRuns.map((p) => p.run.outputs), ...sequentialRuns.map((r) => r.outputs)],
    trace: chromeTrace(pipelinedRuns[mid]!.run, pipelinedRuns[mid]!.spans, elements),
  };
}
