import { CollectiveContext } from '../collectives/context.js';
import { freeCache, LlamaModel, type SequenceCache } from '../models/llama/llama-model.js';
import type { BatchSequence } from '../models/llama/stage.js';
import type { LlamaConfig } from '../models/llama-config.js';
import { llamaReferenceLogits } from '../models/llama-reference.js';
import { llamaParameterShapes } from '../models/preset-configs.js';
import { describePlan, resolvePlan, type ShardingPlan } from '../models/sharding-plan.js';
import { makeRandom } from '../random.js';
import type { Device } from '../runtime/device.js';
import { DeviceGroup } from '../runtime/device-group.js';
import type { CheckOptions } from './check-strategy.js';
import { measureRuns } from './measure-runs.js';
import { estimateModelMemory } from './model-estimate.js';
import type { ModelSource } from './model-source.js';
import type { MeasuredMemory, OutputCheck, RunOptions, StrategyRun } from './run-strategy.js';
import { runFigures, worstCheck } from './run-strategy.js';
import { buildSchedule, dryRun, pipelineElements } from './schedule.js';
import type { ModelStrategy } from './schema.js';
import { decoderRuntime, type ModelStagePlan, shardingStage } from './stages/decoder.js';
import type { StageRuntime } from './stages/kind.js';
import type { ModelValidation } from './validate-model.js';

/** Logits within 1e-4 of the reference's, relative to the reference's largest logit (as the model tests check). */
const RELATIVE_TOLERANCE = 1e-4;

/** Token ids of every sequence of the batch, deterministic from the seed. */
export function randomSequences(strategy: ModelStrategy, vocab: number, seed: number): Uint32Array[] {
  const random = makeRandom(seed ^ 0x9e3779b9);
  return Array.from({ length: strategy.batch.batch_size }, () =>
    Uint32Array.from({ length: strategy.batch.seq_len }, () => Math.floor(random() * vocab)),
  );
}

/** The sequences of each microbatch: consecutive and equal in number (validation checked they divide). */
function microbatchesOf<T>(items: readonly T[], m: number): T[][] {
  const per = items.length / m;
  return Array.from({ length: m }, (_, i) => items.slice(i * per, (i + 1) * per));
}

export function shardingPlanOf(plans: readonly ModelStagePlan[]): ShardingPlan {
  return { stages: plans.map(shardingStage) };
}

function compare(
  against: string,
  runs: readonly (readonly Float32Array[])[],
  want: readonly Float32Array[],
): OutputCheck {
  const scale = want.reduce((m, w) => w.reduce((a, v) => Math.max(a, Math.abs(v)), m), 0);
  let maxAbsError = 0;
  for (const outputs of runs) {
    outputs.forEach((got, i) => {
      const ref = want[i]!;
      const n = Math.min(got.length, ref.length);
      if (got.length !== ref.length) maxAbsError = Number.POSITIVE_INFINITY;
      for (let j = 0; j < n; j++) maxAbsError = Math.max(maxAbsError, Math.abs(got[j]! - ref[j]!));
    });
  }
  const tolerance = RELATIVE_TOLERANCE * Math.max(scale, 1e-6);
  return { against, maxAbsError, tolerance, scale, passed: maxAbsError <= tolerance };
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Every parameter of the model on the host, for the float64 reference. */
function hostTensors(source: ModelSource, config: LlamaConfig): Record<string, Float32Array> {
  const { reader, close } = source.open();
  try {
    return Object.fromEntries(
      llamaParameterShapes(config).map(({ name }) => [name, Float32Array.from(reader.readF32(name))]),
    );
  } finally {
    close();
  }
}

/**
 * The same model on one device, unsharded (TP 1, PP 1), over the same microbatches: what the sharded run
 * must reproduce. Its own group, opened after the sharded run's is gone, so it touches none of its figures.
 */
async function unshardedLogits(
  source: ModelSource,
  sequences: readonly Uint32Array[],
  strategy: ModelStrategy,
  options: RunOptions,
): Promise<Float32Array[]> {
  const group = await DeviceGroup.open({
    count: 1,
    backend: options.backend ?? 'auto',
    adapters: options.adapters?.slice(0, 1),
    tuningCache: options.tuningCache,
  });
  const { reader, close } = source.open();
  try {
    using model = await LlamaModel.load(
      group,
      { config: source.config, weights: reader },
      { capacityFactor: strategy.model.capacity_factor },
    );
    const perSequence = await model.forward(sequences, { microbatches: strategy.batch.microbatches });
    return microbatchesOf(perSequence, strategy.batch.microbatches).map(concat);
  } finally {
    close();
    group.destroy();
  }
}

/**
 * A model strategy on real devices: the model loaded by the library (LlamaModel over the plan's stages,
 * each a LlamaStage of the library's parallel modules), every sequence given its KV cache, the pipeline
 * run and measured as a chain's is, then its logits checked against the unsharded run on one device and
 * the first sequence's against the float64 reference.
 */
export async function runModelStrategy(
  checked: ModelValidation,
  options: RunOptions & CheckOptions,
): Promise<StrategyRun> {
  const strategy = checked.strategy!;
  const source = checked.source!;
  const config = source.config;
  const plans = checked.plans;
  const m = strategy.batch.microbatches;
  const elements = pipelineElements(plans, checked.communications);
  const schedule = buildSchedule(elements, m);
  dryRun(schedule);
  const seed = options.seed ?? strategy.seed ?? 1;
  const sequences = randomSequences(strategy, config.vocabSize, seed);
  const backend = options.backend ?? 'auto';
  const plan = shardingPlanOf(plans);

  const group = await DeviceGroup.open({
    count: strategy.hardware.device_count,
    backend,
    adapters: options.adapters,
    memoryBudgetBytes: strategy.hardware.memory_per_device_bytes,
    tuningCache: options.tuningCache,
  });
  const ctx = new CollectiveContext({ reduceOn: 'host' });
  let model: LlamaModel | null = null;
  const caches: SequenceCache[] = [];
  let result: Omit<StrategyRun, 'checks' | 'maxAbsError' | 'tolerance'>;
  let outputs: readonly (readonly Float32Array[])[];
  try {
    const opened = source.open();
    try {
      model = await LlamaModel.load(
        group,
        { config, weights: opened.reader },
        { plan, ctx, capacityFactor: strategy.model.capacity_factor },
      );
    } finally {
      opened.close();
    }
    const used = (d: Device) => d.ledger.usedBytes;
    const afterLoad = group.devices.map(used);
    sequences.forEach((_, i) => {
      caches.push(model!.newCache(strategy.batch.seq_len, `seq${i}`));
    });
    const afterCaches = group.devices.map(used);
    const batches: BatchSequence[][] = microbatchesOf(
      sequences.map((ids, i) => ({ ids, position: 0, cache: caches[i]!.layers })),
      m,
    );
    const runtimes = new Map<number, StageRuntime>();
    for (const element of elements) {
      if (element.kind === 'compute')
        runtimes.set(element.index, decoderRuntime(model.stages[element.stage.index]!, batches));
    }
    const load = model.expertLoad;
    const measured = await measureRuns(
      { group, ctx, elements, schedule, runtimes, batchSize: strategy.batch.batch_size },
      {
        repeats: options.repeats,
        sequentialBaseline: options.sequentialBaseline,
        onProgress: options.onProgress,
        afterWarmUp: () => load?.reset(),
      },
    );
    outputs = measured.outputs;
    options.onOutputs?.(measured.outputs[0]!);
    const memoryMeasured: MeasuredMemory[] = group.devices.map((d, i) => ({
      device: d.id,
      weights: afterLoad[i]!,
      kvCache: afterCaches[i]! - afterLoad[i]!,
      peak: d.ledger.peakBytes,
    }));
    result = {
      family: 'model',
      strategy,
      findings: checked.findings,
      schedule,
      memoryEstimate: estimateModelMemory(
        strategy,
        config,
        plans,
        group.backend === 'webgpu' ? 'caching' : 'plain',
      ),
      seqLen: strategy.batch.seq_len,
      ...runFigures(group, measured, backend),
      model: {
        description: source.description,
        layers: config.numLayers,
        ...(config.numExperts === undefined ? {} : { experts: config.numExperts }),
        plan: describePlan(resolvePlan(plan, config.numLayers, group.size)),
      },
      memoryMeasured,
      ...(load ? { expertLoad: load.summary() } : {}),
    };
  } finally {
    for (const c of caches) freeCache(c);
    model?.dispose();
    ctx.destroy();
    group.destroy();
  }
  if (options.checkOutputs === false) {
    return { ...result, checks: [], maxAbsError: Number.NaN, tolerance: Number.NaN };
  }
  const checks: OutputCheck[] = [
    compare(
      'the unsharded run on one device',
      outputs,
      await unshardedLogits(source, sequences, strategy, options),
    ),
  ];
  // The float64 reference runs every head in a plain loop: one sequence keeps it to seconds. With a
  // capacity, it would drop tokens over the sequence alone, not the microbatch the run routed together.
  if (strategy.model.capacity_factor === undefined) {
    const want = llamaReferenceLogits(config, hostTensors(source, config), Array.from(sequences[0]!));
    const firstRows = outputs.map((run) => [run[0]!.subarray(0, want.length)]);
    checks.push(compare('the float64 CPU reference (first sequence)', firstRows, [want]));
  }
  return { ...result, checks, ...worstCheck(checks) };
}
