import { CollectiveContext } from '../collectives/context.js';
import { type BackendChoice, DeviceGroup } from '../runtime/device-group.js';
import type { StagePlan } from './model-plan.js';
import { randomIds, randomWeights, type StageWeights } from './model-weights.js';
import { buildLocalStages } from './rank-stages.js';
import type { RunOptions } from './run-strategy.js';
import { buildSchedule, dryRun, type PipelineElement, pipelineElements, type Schedule } from './schedule.js';
import type { Strategy } from './schema.js';
import type { StageRuntime } from './stages/kind.js';

/** A chain strategy built on the devices of one process: what `run` measures, alone or as one rank. */
export interface PreparedChain {
  readonly elements: readonly PipelineElement[];
  /** The whole pipeline's schedule (every rank's lanes), checked by a dry run. */
  readonly schedule: Schedule;
  readonly weights: readonly StageWeights[];
  readonly ids: readonly Uint32Array[];
  readonly backend: BackendChoice;
  readonly group: DeviceGroup;
  readonly ctx: CollectiveContext;
  /** This process's part of every stage it holds a device of, by element index. */
  readonly runtimes: ReadonlyMap<number, StageRuntime>;
  destroy(): void;
}

/**
 * Plans the schedule (checked by a dry run before any device opens), draws the weights and token ids
 * from the seed (every rank draws the same), opens `devices` (numbered as the file numbers them) and
 * builds each stage's part on them with the library's modules: all of every stage in one process.
 */
export async function prepareChain(
  strategy: Strategy,
  plans: readonly StagePlan[],
  options: RunOptions,
  devices: readonly number[],
): Promise<PreparedChain> {
  const m = strategy.batch.microbatches;
  const elements = pipelineElements(plans, strategy.communications);
  const schedule = buildSchedule(elements, m);
  dryRun(schedule);
  const seed = options.seed ?? strategy.seed ?? 1;
  const weights = options.weights ?? randomWeights(plans, seed);
  const ids = randomIds(strategy, m, seed);
  const backend = options.backend ?? 'auto';
  const group = await DeviceGroup.open({
    count: devices.length,
    ids: devices,
    backend,
    adapters: options.adapters,
    memoryBudgetBytes: strategy.hardware.memory_per_device_bytes,
    tuningCache: options.tuningCache,
  });
  const ctx = new CollectiveContext({ reduceOn: 'host' });
  try {
    const computes = elements.flatMap((e) =>
      e.kind === 'compute' ? [{ index: e.index, plan: e.stage as StagePlan }] : [],
    );
    const runtimes = buildLocalStages(computes, weights, group, { ctx, ids, seqLen: strategy.model.seq_len });
    return {
      elements,
      schedule,
      weights,
      ids,
      backend,
      group,
      ctx,
      runtimes,
      destroy() {
        for (const r of runtimes.values()) r.destroy();
        ctx.destroy();
        group.destroy();
      },
    };
  } catch (error) {
    ctx.destroy();
    group.destroy();
    throw error;
  }
}
