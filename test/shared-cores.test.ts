import { describe, expect, it } from 'vitest';
import {
  activeStages,
  aloneMs,
  measureCapacity,
  sharedFillDrainMs,
  sharedStepMs,
} from '../src/strategy/shared-cores.js';

describe('stages sharing cores (processor sharing)', () => {
  it('a step takes the slowest stage on devices of their own, the sum on one core, and between', () => {
    expect(sharedStepMs([100, 200], 2)).toBe(200);
    expect(sharedStepMs([100, 200], 1)).toBe(300);
    // Both at 0.75 of their speed alone until the first has done its 100 ms: 133.3 ms; then 100 ms alone.
    expect(sharedStepMs([200, 100], 1.5)).toBeCloseTo(100 / 0.75 + 100, 9);
    expect(sharedStepMs([], 1.5)).toBe(0);
  });

  it('a fill-drain is the textbook formula with a core per stage, and the total work on one', () => {
    const works = [30, 70, 50];
    const m = 5;
    expect(sharedFillDrainMs(works, m, 3)).toBeCloseTo(30 + 70 + 50 + (m - 1) * 70, 9);
    expect(sharedFillDrainMs(works, m, 1)).toBeCloseTo(m * (30 + 70 + 50), 9);
    expect(sharedFillDrainMs(works, 1, 1.4)).toBeCloseTo(150, 9);
  });

  it('counts the stages running beside a microbatch of a stage', () => {
    // 2 stages, 4 microbatches: stage 0 runs 0..3 at steps 0..3, stage 1 at steps 1..4.
    expect([0, 1, 2, 3].map((j) => activeStages(0, j, 2, 4))).toEqual([1, 2, 2, 2]);
    expect([0, 1, 2, 3].map((j) => activeStages(1, j, 2, 4))).toEqual([2, 2, 2, 1]);
  });

  it('recovers the capacity from the times it would make, and their times alone', () => {
    const capacity = 1.3;
    const alone = [120, 150];
    const m = 4;
    const measured = alone.map((t, s) =>
      Array.from({ length: m }, (_, j) => t / Math.min(1, capacity / activeStages(s, j, 2, m))),
    );
    expect(measureCapacity(measured)).toBeCloseTo(capacity, 9);
    for (const s of [0, 1]) {
      for (const t of aloneMs(measured[s]!, s, 2, capacity)) expect(t).toBeCloseTo(alone[s]!, 9);
    }
  });

  it('has no capacity to measure with one stage or one microbatch, and keeps it within [1, stages]', () => {
    expect(measureCapacity([[10, 10, 10]])).toBeNull();
    expect(measureCapacity([[10], [10]])).toBeNull();
    // Shared microbatches faster than alone ones (noise): no less than one stage's worth.
    expect(
      measureCapacity(
        [
          [50, 100, 100],
          [100, 100, 50],
        ].map((t) => t.map((v) => 1000 / v)),
      ),
    ).toBe(2);
    expect(
      measureCapacity([
        [10, 30, 30],
        [30, 30, 10],
      ]),
    ).toBe(1);
  });
});
