import type { CollectiveContext } from '../collectives/context.js';
import { Partial, type Placement, Replicate, Shard } from '../collectives/layout.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { type RankLayout, redistributeAcrossRanks } from '../distributed/redistribute-ranks.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { hostTransport, type Transport } from './executor.js';
import type { StagePlan } from './model-plan.js';
import type { PipelineElement } from './schedule.js';
import type { StageRuntime } from './stages/kind.js';
import { chainKind } from './stages/registry.js';

export interface RankTransportOptions {
  readonly pg: ProcessGroup;
  /** The rank that owns each device id. */
  readonly owner: ReadonlyMap<number, number>;
  readonly ctx: CollectiveContext;
  readonly elements: readonly PipelineElement[];
  /** This rank's stage runtimes (over its devices of each stage), by element index. */
  readonly runtimes: ReadonlyMap<number, StageRuntime>;
  /** Every device this rank owns. */
  readonly group: DeviceGroup;
  /** Rows of a stage's output per microbatch (tokens). */
  readonly rows: number;
}

/** The devices a stage runs microbatch `mb` on, across every rank: its group, or one replica in turn. */
export function stageDevicesFor(plan: StagePlan, microbatch: number): number[] {
  if (plan.mode === 'replicas') return [plan.devices[microbatch % plan.devices.length]!];
  return [...plan.devices];
}

/** What a stage leaves, over its whole group (a column split's shards, a row split's partial sums). */
export function outputLayout(plan: StagePlan, microbatch: number): RankLayout {
  const devices = stageDevicesFor(plan, microbatch);
  const placement: Placement =
    plan.mode === 'column' ? Shard(1, plan.shardSizes) : plan.mode === 'row' ? Partial() : Replicate();
  return { devices, placement };
}

/** What a stage reads, over its whole group: a row split its input sharded like its rows, others whole. */
export function inputLayout(plan: StagePlan, microbatch: number): RankLayout {
  const readsIds = chainKind(plan.kind).readsIds === true;
  const placement = plan.mode === 'row' && !readsIds ? Shard(1, plan.shardSizes) : Replicate();
  return { devices: stageDevicesFor(plan, microbatch), placement };
}

/**
 * Communications across ranks: one that stays on this rank's devices is the one-process redistribution
 * through its host, exactly as without ranks; one whose groups span ranks moves between them
 * (`redistributeAcrossRanks`: the hierarchical collectives where the op is a collective within one group
 * over every rank, point-to-point messages of only what each destination reads otherwise).
 */
export function rankTransport(options: RankTransportOptions): Transport {
  const { pg, owner, elements, runtimes, group } = options;
  const local = hostTransport(options.ctx, runtimes);
  const mine = new Set(group.devices.map((d) => d.id));
  return {
    async communicate(element, microbatch, source) {
      const producer = elements[element.index - 1] as Extract<PipelineElement, { kind: 'compute' }>;
      const consumer = elements[element.index + 1] as Extract<PipelineElement, { kind: 'compute' }>;
      const from = outputLayout(producer.stage as StagePlan, microbatch);
      const to = inputLayout(consumer.stage as StagePlan, microbatch);
      const everyone = new Set([...from.devices, ...to.devices].map((d) => owner.get(d)));
      if (everyone.size === 1 && everyone.has(pg.rank)) return local.communicate(element, microbatch, source);
      const targets = to.devices.filter((d) => mine.has(d));
      const width = (producer.stage as StagePlan).outFeatures;
      const result = await redistributeAcrossRanks({
        pg,
        owner,
        shape: [options.rows, width],
        from,
        to,
        source,
        target: targets.length > 0 ? group.select(targets) : undefined,
        label: `${element.name}/mb${microbatch}`,
        op: element.comm.op,
      });
      return { output: result.output, hostBytes: result.hostBytes };
    },
  };
}
