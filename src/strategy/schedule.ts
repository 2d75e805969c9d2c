import { ParallelError } from '../errors.js';
import { matchCommunication, type PipelineStage } from './model-plan.js';
import type { CommunicationSpec } from './schema.js';

/**
 * Microbatches an element's outputs may run ahead of its consumer: the executor holds an element back
 * until its consumer has taken the microbatch this many before, and the memory estimate counts as many.
 */
export const IN_FLIGHT = 2;

/** A step of the forward pipeline: a stage's compute, or a communication run by the host. */
export type PipelineElement =
  | { readonly kind: 'compute'; readonly index: number; readonly name: string; readonly stage: PipelineStage }
  | {
      readonly kind: 'comm';
      readonly index: number;
      readonly name: string;
      readonly comm: CommunicationSpec;
      readonly commIndex: number;
    };

export const HOST_LANE = 'host';
export type Lane = number | typeof HOST_LANE;

export interface Action {
  readonly id: string;
  readonly element: number;
  readonly microbatch: number;
  readonly lane: Lane;
  /** The fill-drain step this action belongs to. */
  readonly step: number;
  /** Ids of the actions whose results it reads. */
  readonly deps: readonly string[];
}

/** Per-lane ordered action lists: the whole schedule as data, testable without a device. */
export interface Schedule {
  readonly elements: readonly PipelineElement[];
  readonly microbatches: number;
  readonly lanes: readonly Lane[];
  readonly actions: ReadonlyMap<Lane, readonly Action[]>;
  readonly steps: number;
  /**
   * A rank's share of a schedule run over several processes: the device lanes it owns and the
   * communications its host takes part in. Absent: one process runs every lane.
   */
  readonly owned?: OwnedLanes;
}

export interface OwnedLanes {
  readonly devices: readonly number[];
  /** Element indices of the communications this rank sends or receives in. */
  readonly comms: readonly number[];
}

export const actionId = (element: number, microbatch: number, lane: Lane) =>
  `e${element}/mb${microbatch}/${lane}`;

/** The devices that run element `e` for microbatch `mb`: all of a tensor-parallel group, one replica of a data-parallel stage. */
export function lanesOf(element: PipelineElement, microbatch: number): Lane[] {
  if (element.kind === 'comm') return [HOST_LANE];
  const { stage } = element;
  if (stage.mode === 'replicas') return [stage.devices[microbatch % stage.devices.length]!];
  return [...stage.devices];
}

/** The lanes of `lanesOf` this process runs: all of them, or a rank's own (`Schedule.owned`). */
export function lanesIn(schedule: Schedule, element: PipelineElement, microbatch: number): Lane[] {
  const lanes = lanesOf(element, microbatch);
  const owned = schedule.owned;
  if (!owned) return lanes;
  if (element.kind === 'comm') return owned.comms.includes(element.index) ? lanes : [];
  return lanes.filter((lane) => owned.devices.includes(lane as number));
}

/**
 * A rank's share of `schedule`: each lane's list keeps the actions this rank runs, in the same order, so
 * every rank's host takes the communications in the one order all of them agree on.
 */
export function rankSchedule(schedule: Schedule, owned: OwnedLanes): Schedule {
  const mine: Schedule = { ...schedule, owned };
  const actions = new Map<Lane, Action[]>();
  for (const [lane, list] of schedule.actions) {
    const kept = list.filter((a) =>
      lanesIn(mine, schedule.elements[a.element]!, a.microbatch).includes(lane),
    );
    if (kept.length > 0) actions.set(lane, kept);
  }
  return { ...mine, lanes: schedule.lanes.filter((l) => actions.has(l)), actions };
}

/**
 * Forward fill-drain (GPipe) over the pipeline's elements: at step t, element e works on microbatch t - e.
 * A device that serves two stages runs, within a step, the later stage first: it drains a microbatch
 * before filling the next, so activations do not pile up on it.
 */
export function buildSchedule(elements: readonly PipelineElement[], microbatches: number): Schedule {
  const steps = elements.length + microbatches - 1;
  const actions = new Map<Lane, Action[]>();
  for (let step = 0; step < steps; step++) {
    for (let e = elements.length - 1; e >= 0; e--) {
      const mb = step - e;
      if (mb < 0 || mb >= microbatches) continue;
      const deps = e === 0 ? [] : lanesOf(elements[e - 1]!, mb).map((lane) => actionId(e - 1, mb, lane));
      for (const lane of lanesOf(elements[e]!, mb)) {
        const list = actions.get(lane) ?? [];
        list.push({ id: actionId(e, mb, lane), element: e, microbatch: mb, lane, step, deps });
        actions.set(lane, list);
      }
    }
  }
  const lanes = [...actions.keys()].sort((a, b) => (a === HOST_LANE ? 1 : b === HOST_LANE ? -1 : a - b));
  return { elements, microbatches, lanes, actions, steps };
}

/**
 * Runs the schedule without doing any work: each lane takes its next action once every dependency is
 * done. A round in which no lane can move, with actions left, is a deadlock: it is reported with what
 * each lane waits for, before anything runs on a device.
 */
export function dryRun(schedule: Schedule): string[] {
  const done = new Set<string>();
  const cursor = new Map<Lane, number>(schedule.lanes.map((l) => [l, 0]));
  const order: string[] = [];
  const total = [...schedule.actions.values()].reduce((n, list) => n + list.length, 0);
  while (order.length < total) {
    let moved = false;
    for (const lane of schedule.lanes) {
      const list = schedule.actions.get(lane)!;
      const next = list[cursor.get(lane)!];
      if (next?.deps.every((d) => done.has(d))) {
        done.add(next.id);
        order.push(next.id);
        cursor.set(lane, cursor.get(lane)! + 1);
        moved = true;
      }
    }
    if (!moved) {
      const waits = schedule.lanes
        .map((lane) => {
          const next = schedule.actions.get(lane)![cursor.get(lane)!];
          return next
            ? `${laneName(lane)} waits at ${next.id} for ${next.deps.filter((d) => !done.has(d)).join(', ')}`
            : null;
        })
        .filter(Boolean);
      throw new ParallelError('SCHEDULE', `the schedule deadlocks: ${waits.join('; ')}`, {
        fix: 'reorder the stages or give the shared device its stages in pipeline order',
      });
    }
  }
  return order;
}

export function laneName(lane: Lane): string {
  return lane === HOST_LANE ? 'host' : `device ${lane}`;
}

/** The schedule as a step × lane grid: each cell lists `element:mb` for the actions of that step. */
export function formatScheduleGrid(schedule: Schedule): string {
  const header = ['step', ...schedule.lanes.map(laneName)];
  const rows: string[][] = [];
  for (let step = 0; step < schedule.steps; step++) {
    rows.push([
      String(step),
      ...schedule.lanes.map(
        (lane) =>
          schedule.actions
            .get(lane)!
            .filter((a) => a.step === step)
            .map((a) => `${schedule.elements[a.element]!.name}:${a.microbatch}`)
            .join(' ') || '.',
      ),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')).join('\n');
}

/**
 * The pipeline's elements in order: each stage, then the communication that carries its output on (the
 * first unused one whose source group is the stage's devices, as validation matched them).
 */
export function pipelineElements(
  stages: readonly PipelineStage[],
  communications: readonly CommunicationSpec[],
): PipelineElement[] {
  const elements: PipelineElement[] = [];
  const used = new Set<number>();
  stages.forEach((stage, i) => {
    elements.push({ kind: 'compute', index: elements.length, name: stage.spec.name, stage });
    if (i === stages.length - 1) return;
    const commIndex = matchCommunication(stage, stages[i + 1]!, communications, used);
    if (commIndex < 0) return;
    used.add(commIndex);
    const comm = communications[commIndex]!;
    elements.push({ kind: 'comm', index: elements.length, name: comm.name, comm, commIndex });
  });
  return elements;
}
