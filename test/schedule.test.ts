import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import {
  type Action,
  actionId,
  buildSchedule,
  dryRun,
  formatScheduleGrid,
  HOST_LANE,
  type Lane,
  type PipelineElement,
  pipelineElements,
  type Schedule,
} from '../src/strategy/schedule.js';
import { validateStrategy } from '../src/strategy/validate.js';

/** The pipeline elements of an example strategy, as the runner builds them. */
function elementsOf(file: string): PipelineElement[] {
  const text = readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8');
  const { strategy, plans, findings } = validateStrategy(JSON.parse(text));
  expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  return pipelineElements(plans, strategy!.communications);
}

const allActions = (schedule: Schedule): Action[] => [...schedule.actions.values()].flat();

describe('pipelineElements', () => {
  it('puts each communication after the stage it carries on', () => {
    expect(elementsOf('seed-fits.json').map((e) => `${e.kind}:${e.name}`)).toEqual([
      'compute:embed_1',
      'comm:embed_to_expert',
      'compute:expert_2',
      'comm:expert_to_agg',
      'compute:agg_3',
    ]);
  });
});

describe('buildSchedule', () => {
  const elements = elementsOf('seed-fits.json');

  it.each([1, 2, 8])('takes elements + m - 1 steps (m = %i)', (m) => {
    const schedule = buildSchedule(elements, m);
    expect(schedule.steps).toBe(elements.length + m - 1);
    const steps = new Set(allActions(schedule).map((a) => a.step));
    expect(steps.size).toBe(schedule.steps);
    expect(Math.max(...steps)).toBe(schedule.steps - 1);
  });

  it('runs element e on microbatch step - e, every element and microbatch once per lane', () => {
    const schedule = buildSchedule(elements, 4);
    for (const a of allActions(schedule)) expect(a.step - a.element).toBe(a.microbatch);
    const ids = allActions(schedule).map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    // embed_1 on [0,1], expert_2 on [1,2], agg_3 on [2], two communications on the host.
    expect(ids).toHaveLength(4 * (2 + 1 + 2 + 1 + 1));
    expect(schedule.lanes).toEqual([0, 1, 2, HOST_LANE]);
  });

  it("puts each action's dependencies earlier: in an earlier step, on the lanes of the element before", () => {
    const schedule = buildSchedule(elements, 4);
    const byId = new Map(allActions(schedule).map((a) => [a.id, a]));
    for (const a of allActions(schedule)) {
      if (a.element === 0) expect(a.deps).toEqual([]);
      else expect(a.deps.length).toBeGreaterThan(0);
      for (const d of a.deps) {
        const dep = byId.get(d);
        expect(dep, `${a.id} depends on ${d}`).toBeDefined();
        expect(dep!.step).toBeLessThan(a.step);
        expect(dep!.element).toBe(a.element - 1);
        expect(dep!.microbatch).toBe(a.microbatch);
      }
    }
    expect(byId.get(actionId(2, 0, 1))!.deps).toEqual([actionId(1, 0, HOST_LANE)]);
    expect(byId.get(actionId(1, 0, HOST_LANE))!.deps).toEqual([actionId(0, 0, 0), actionId(0, 0, 1)]);
  });

  it('orders each lane by step, and a device serving two stages runs the later stage first within a step', () => {
    const schedule = buildSchedule(elements, 8);
    for (const list of schedule.actions.values()) {
      for (let i = 1; i < list.length; i++) {
        const [prev, next] = [list[i - 1]!, list[i]!];
        expect(prev.step).toBeLessThanOrEqual(next.step);
        if (prev.step === next.step) expect(prev.element).toBeGreaterThan(next.element);
      }
    }
    // Device 1 serves embed_1 (element 0) and expert_2 (element 2): at step 2 it drains microbatch 0 first.
    const step2 = schedule.actions.get(1)!.filter((a) => a.step === 2);
    expect(step2.map((a) => a.id)).toEqual([actionId(2, 0, 1), actionId(0, 2, 1)]);
  });

  it('sends microbatches to data-parallel replicas in turn', () => {
    const dp = elementsOf('data-parallel-agg.json');
    const agg = dp.length - 1;
    const schedule = buildSchedule(dp, 4);
    const lanesOf = (mb: number) =>
      schedule.lanes.filter((lane) =>
        schedule.actions.get(lane)!.some((a) => a.element === agg && a.microbatch === mb),
      );
    expect([0, 1, 2, 3].map(lanesOf)).toEqual([[1], [2], [1], [2]]);
  });
});

describe('dryRun', () => {
  it('runs every action of a built schedule once, each after its dependencies', () => {
    const schedule = buildSchedule(elementsOf('seed-fits.json'), 8);
    const order = dryRun(schedule);
    expect(order).toHaveLength(allActions(schedule).length);
    const at = new Map(order.map((id, i) => [id, i]));
    for (const a of allActions(schedule))
      for (const d of a.deps) expect(at.get(d)!).toBeLessThan(at.get(a.id)!);
  });

  it('reports a deadlock, with what each lane waits for, on a schedule whose lane order is inverted', () => {
    const [embed, comm] = elementsOf('seed-fits.json');
    const lane0: Lane = 0;
    const act = (element: number, lane: Lane, deps: string[]): Action => ({
      id: actionId(element, 0, lane),
      element,
      microbatch: 0,
      lane,
      step: element,
      deps,
    });
    // Device 0 is told to run element 2 (which needs the host's element 1, which needs device 0's
    // element 0) before element 0: no lane can ever move.
    const schedule: Schedule = {
      elements: [embed!, comm!, { ...embed!, index: 2, name: 'again' }],
      microbatches: 1,
      lanes: [lane0, HOST_LANE],
      actions: new Map<Lane, Action[]>([
        [lane0, [act(2, 0, [actionId(1, 0, HOST_LANE)]), act(0, 0, [])]],
        [HOST_LANE, [act(1, HOST_LANE, [actionId(0, 0, 0)])]],
      ]),
      steps: 3,
    };
    let error: unknown;
    try {
      dryRun(schedule);
    } catch (e) {
      error = e;
    }
    expect(isParallelError(error, 'SCHEDULE')).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain('deadlocks');
    expect(message).toContain(`device 0 waits at ${actionId(2, 0, 0)} for ${actionId(1, 0, HOST_LANE)}`);
    expect(message).toContain(`host waits at ${actionId(1, 0, HOST_LANE)} for ${actionId(0, 0, 0)}`);
    // In pipeline order the same actions run.
    const fixed: Schedule = {
      ...schedule,
      actions: new Map(
        [...schedule.actions].map(([lane, list]) => [lane, [...list].sort((a, b) => a.element - b.element)]),
      ),
    };
    expect(dryRun(fixed)).toEqual([actionId(0, 0, 0), actionId(1, 0, HOST_LANE), actionId(2, 0, 0)]);
  });
});

describe('formatScheduleGrid', () => {
  it('prints a step × lane grid with a header naming the devices and the host', () => {
    const schedule = buildSchedule(elementsOf('seed-fits.json'), 2);
    const lines = formatScheduleGrid(schedule).split('\n');
    expect(lines).toHaveLength(1 + schedule.steps);
    const header = lines[0]!.split('|').map((c) => c.trim());
    expect(header).toEqual(['step', 'device 0', 'device 1', 'device 2', 'host']);
    // Step 0: only embed_1 on devices 0 and 1 (microbatch 0).
    expect(lines[1]!.split('|').map((c) => c.trim())).toEqual(['0', 'embed_1:0', 'embed_1:0', '.', '.']);
    expect(
      lines
        .at(-1)!
        .split('|')
        .map((c) => c.trim()),
    ).toEqual(['5', '.', '.', 'agg_3:1', '.']);
  });
});

describe('direct handoff', () => {
  it('puts no transfer between a column split and the row split that reads its shards', () => {
    expect(elementsOf('megatron-mlp.json').map((e) => e.name)).toEqual([
      'embed',
      'embed_to_fc1',
      'fc1',
      'fc2',
      'fc2_to_head',
      'head',
    ]);
  });
});
