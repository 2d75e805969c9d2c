import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CommSpan, ExecutionResult } from '../src/strategy/executor.js';
import { mergeRankComms } from '../src/strategy/measure.js';
import { rankDevices, worldFindings } from '../src/strategy/rank-plan.js';
import { localStage } from '../src/strategy/rank-stages.js';
import { buildSchedule, lanesIn, pipelineElements, rankSchedule } from '../src/strategy/schedule.js';
import { validateStrategy } from '../src/strategy/validate.js';

// The parts of the runner across ranks that need no process or device: who owns what, each rank's share of
// the schedule, the slice of a split stage a rank computes, and how the ranks' timings of one transfer merge.
function example(name: string, patch: Record<string, unknown> = {}) {
  const value = {
    ...JSON.parse(readFileSync(new URL(`../examples/${name}`, import.meta.url), 'utf8')),
    ...patch,
  };
  const { strategy, plans, findings } = validateStrategy(value);
  return {
    strategy: strategy!,
    plans,
    findings,
    elements: pipelineElements(plans, strategy!.communications),
  };
}

describe('ranks of a strategy', () => {
  it('splits device_count evenly over the world in order when the file names no ranks', () => {
    const hw = { hardware: { device_count: 5 } };
    expect(rankDevices(hw, 2)).toEqual([
      [0, 1, 2],
      [3, 4],
    ]);
    expect(rankDevices(hw, 5)).toEqual([[0], [1], [2], [3], [4]]);
    expect(
      rankDevices(
        {
          ...hw,
          ranks: [
            [4, 0],
            [1, 2, 3],
          ],
        },
        2,
      ),
    ).toEqual([
      [4, 0],
      [1, 2, 3],
    ]);
  });

  it('seed-fits passes over 3 ranks; the world size and stages that cannot span ranks are findings with a fix', () => {
    const seed = example('seed-fits.json');
    expect(worldFindings(seed.strategy, seed.plans, 3)).toEqual([]);
    expect(worldFindings(seed.strategy, seed.plans, 4).map((f) => f.code)).toEqual(['RANKS_WORLD_SIZE']);
    const listed = example('seed-fits.json', { ranks: [[0], [1], [2]] });
    const wrong = worldFindings(listed.strategy, listed.plans, 2);
    expect(wrong).toMatchObject([{ code: 'RANKS_WORLD_SIZE', path: '$.ranks' }]);
    expect(wrong[0]!.fix).toContain('--nprocs 3');
    // Replicas on two ranks cannot be: the stage's microbatches take turns on one process's devices.
    const dp = example('data-parallel-agg.json');
    const findings = worldFindings(dp.strategy, dp.plans, 3);
    expect(findings.map((f) => [f.code, f.path])).toEqual([['RANKS_STAGE_SPLIT', '$.stages[2]']]);
    expect(findings[0]!.fix).toContain('$.ranks');
    const fine = example('data-parallel-agg.json', { ranks: [[0], [1, 2]] });
    expect(worldFindings(fine.strategy, fine.plans, 2)).toEqual([]);
    const vocab = example('vocab-parallel.json');
    expect(worldFindings(vocab.strategy, vocab.plans, 2).map((f) => f.code)).toContain('RANKS_STAGE_SPLIT');
  });
});

describe("a rank's share of the schedule", () => {
  const seed = example('seed-fits.json');
  const schedule = buildSchedule(seed.elements, seed.strategy.batch.microbatches);

  it('keeps each lane its own actions in the same order, and the host the communications the rank is in', () => {
    const comms = [[1], [1, 3], [1, 3]];
    const shares = [0, 1, 2].map((r) => rankSchedule(schedule, { devices: [r], comms: comms[r]! }));
    for (const [r, share] of shares.entries()) {
      expect(share.lanes).toEqual([r, 'host']);
      expect(share.actions.get(r)).toEqual(schedule.actions.get(r));
      expect(share.actions.get('host')).toEqual(
        schedule.actions.get('host')!.filter((a) => comms[r]!.includes(a.element)),
      );
    }
    // embed_1 runs on devices 0 and 1: each rank runs its own lane of it.
    expect(lanesIn(shares[0]!, seed.elements[0]!, 0)).toEqual([0]);
    expect(lanesIn(shares[1]!, seed.elements[0]!, 0)).toEqual([1]);
    expect(lanesIn(shares[2]!, seed.elements[0]!, 0)).toEqual([]);
    expect(lanesIn(schedule, seed.elements[0]!, 0)).toEqual([0, 1]);
  });
});

describe("a split stage's part on one rank", () => {
  it('takes the columns (column split) or rows (row split) of the local shards, in group order', () => {
    const { plans } = example('balanced-3dev.json');
    const column = plans.find((p) => p.mode === 'column')!;
    const w = Float32Array.from({ length: column.inFeatures * column.outFeatures }, (_, i) => i);
    const b = Float32Array.from({ length: column.outFeatures }, (_, i) => -i);
    const local = [column.devices[0]!, column.devices[2]!];
    const part = localStage(column, { w, b }, local);
    const [s0, s1, s2] = column.shardSizes as [number, number, number];
    expect(part.plan.devices).toEqual(local);
    expect(part.plan.shardSizes).toEqual([s0, s2]);
    expect(part.plan.outFeatures).toBe(s0 + s2);
    const cols = [
      ...Array.from({ length: s0 }, (_, j) => j),
      ...Array.from({ length: s2 }, (_, j) => s0 + s1 + j),
    ];
    expect(Array.from(part.weights.b!)).toEqual(cols.map((c) => -c));
    const row1 = Array.from(part.weights.w.subarray(part.plan.outFeatures, 2 * part.plan.outFeatures));
    expect(row1).toEqual(cols.map((c) => column.outFeatures + c));

    const row = plans.find((p) => p.mode === 'row')!;
    const wr = Float32Array.from({ length: row.inFeatures * row.outFeatures }, (_, i) => i);
    const mine = localStage(row, { w: wr, b }, [row.devices[1]!]);
    const at = row.shardSizes[0]!;
    expect(mine.plan.inFeatures).toBe(row.shardSizes[1]);
    expect(mine.weights.w[0]).toBe(at * row.outFeatures);
    expect(mine.weights.w.length).toBe(row.shardSizes[1]! * row.outFeatures);
    expect(mine.weights.b).toBe(b);
  });
});

describe('one transfer timed by several ranks', () => {
  const span = (
    rank: number,
    start: number,
    ready: number,
    end: number,
    holdsSources: boolean,
  ): CommSpan => ({
    element: 1,
    microbatch: 0,
    startNs: start,
    readyNs: ready,
    endNs: end,
    hostBytes: 100,
    rank,
    holdsSources,
  });

  it('starts when the last source rank started it, is ready when its last source was, ends with the last rank', () => {
    const run: ExecutionResult = {
      startNs: 0,
      endNs: 100,
      hostCpuMs: null,
      outputs: [],
      comms: [span(0, 10, 12, 20, true), span(1, 11, 15, 22, true), span(2, 5, 5, 30, false)],
    };
    expect(mergeRankComms(run).comms).toEqual([
      { element: 1, microbatch: 0, startNs: 11, readyNs: 15, endNs: 30, hostBytes: 300 },
    ]);
    const one = { ...run, comms: [{ ...span(0, 1, 2, 3, true), rank: undefined, holdsSources: undefined }] };
    expect(mergeRankComms(one)).toBe(one);
  });
});
