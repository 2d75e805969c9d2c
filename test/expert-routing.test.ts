import { describe, expect, it } from 'vitest';
import { ExpertLoad } from '../src/parallel/expert-load.js';
import { placeExperts } from '../src/parallel/expert-placement.js';
import { expertCapacity, planRouting } from '../src/parallel/expert-routing.js';

/** Host-side MoE planning: placement, the dispatch and combine orders, capacity, and the load summary. */

describe('placeExperts', () => {
  it('spreads experts evenly in order: 4 over 3 groups is [0, 1], [2], [3]', () => {
    const p = placeExperts(4, 3);
    expect(p.experts).toEqual([[0, 1], [2], [3]]);
    expect(p.owner).toEqual([0, 0, 1, 2]);
    expect(p.localIndex).toEqual([0, 1, 0, 0]);
  });

  it('takes a plan and refuses an expert placed twice, missing, unknown, or a wrong number of lists', () => {
    expect(
      placeExperts(4, 2, [
        [3, 0],
        [1, 2],
      ]).owner,
    ).toEqual([0, 1, 1, 0]);
    expect(() =>
      placeExperts(
        4,
        2,
        [
          [0, 1],
          [1, 2, 3],
        ],
        'plan.stages[0].experts',
      ),
    ).toThrow(/expert 1 is placed twice \(groups 0 and 1\)/);
    expect(() => placeExperts(4, 2, [[0, 1], [2]])).toThrow(/expert 3 is placed on no group/);
    expect(() =>
      placeExperts(4, 2, [
        [0, 1],
        [2, 7],
      ]),
    ).toThrow(/expert 7 does not exist: the model has 4/);
    expect(() =>
      placeExperts(4, 3, [
        [0, 1],
        [2, 3],
      ]),
    ).toThrow(/2 expert lists for 3 expert groups/);
  });
});

describe('planRouting', () => {
  // 4 experts over 2 groups ([0, 1] and [2, 3]); k = 2. Group 0 routes 2 tokens, group 1 routes 3.
  const placement = placeExperts(4, 2);
  const picks = [Uint32Array.from([2, 0, 1, 2]), Uint32Array.from([3, 2, 0, 1, 2, 3])];

  it('sends each row to the group of its expert, grouped by expert, in token order', () => {
    const plan = planRouting(picks, 2, placement);
    // Group 0: token 0 -> experts 2 and 0, token 1 -> 1 and 2. To group 0: e0 [t0], e1 [t1]; to 1: e2 [t0, t1].
    expect(Array.from(plan.sendIds[0]!)).toEqual([0, 1, 0, 1]);
    // Group 1: t0 -> 3, 2; t1 -> 0, 1; t2 -> 2, 3. To 0: e0 [t1], e1 [t1]; to 1: e2 [t0, t2], e3 [t0, t2].
    expect(Array.from(plan.sendIds[1]!)).toEqual([1, 1, 0, 2, 0, 2]);
    expect(plan.sendCounts).toEqual([
      [2, 2],
      [2, 4],
    ]);
    expect(plan.perExpert).toEqual([2, 2, 4, 2]);
    expect(plan.dropped).toEqual([0, 0, 0, 0]);
  });

  it('gives each expert its received rows, and maps the outputs back to arrival order', () => {
    const plan = planRouting(picks, 2, placement);
    // Group 1 receives from group 0 [e2 t0, e2 t1], then from group 1 [e2 t0, e2 t2, e3 t0, e3 t2].
    expect(plan.expertRows[1]!.map((r) => Array.from(r))).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
    expect(Array.from(plan.returnIds[1]!)).toEqual([0, 1, 2, 3, 4, 5]);
    // Group 0 receives [e0 t0, e1 t1] from 0, then [e0 t1, e1 t1] from 1: expert 0 runs rows 0 and 2.
    expect(plan.expertRows[0]!.map((r) => Array.from(r))).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(Array.from(plan.returnIds[0]!)).toEqual([0, 2, 1, 3]);
  });

  it('combines each (token, slot) from its row in the send order', () => {
    const plan = planRouting(picks, 2, placement);
    // Group 0 sent [e0 t0, e1 t1, e2 t0, e2 t1]: slot (t0, s0) = e2 t0 is row 2, (t0, s1) = e0 t0 row 0.
    expect(Array.from(plan.combineIds[0]!)).toEqual([2, 0, 1, 3]);
    expect(Array.from(plan.combineIds[1]!)).toEqual([4, 2, 0, 1, 3, 5]);
  });

  it('drops assignments over capacity first come first served and points them past the end', () => {
    // Capacity 2: expert 2 takes group 0's t0 and t1, then drops group 1's t0 and t2.
    const plan = planRouting(picks, 2, placement, 2);
    expect(plan.perExpert).toEqual([2, 2, 2, 2]);
    expect(plan.dropped).toEqual([0, 0, 2, 0]);
    // Group 1 sends e0 t1 and e1 t1 to group 0, and only e3's t0 and t2 to group 1.
    expect(plan.sendCounts[1]).toEqual([2, 2]);
    const ids = Array.from(plan.combineIds[1]!);
    // t0: slot 0 = e3 (row 2), slot 1 = e2 dropped (4 = rows sent, past the end).
    expect(ids.slice(0, 2)).toEqual([2, 4]);
  });

  it('capacity is ceil(factor * tokens * k / experts), at least one', () => {
    expect(expertCapacity(1, 5, 2, 4)).toBe(3);
    expect(expertCapacity(1.25, 8, 2, 8)).toBe(3);
    expect(expertCapacity(0.01, 1, 1, 8)).toBe(1);
  });

  it('handles a group with no tokens and a group that receives nothing', () => {
    const plan = planRouting([Uint32Array.from([0, 1]), new Uint32Array(0)], 2, placement);
    expect(plan.sendCounts).toEqual([
      [2, 0],
      [0, 0],
    ]);
    expect(plan.expertRows[1]!.map((r) => r.length)).toEqual([0, 0]);
    expect(plan.returnIds[1]!.length).toBe(0);
    expect(plan.combineIds[1]!.length).toBe(0);
  });
});

describe('ExpertLoad', () => {
  it('names the busiest group and expert and moves experts towards the idlest group', () => {
    const load = new ExpertLoad();
    load.describe({ stage: 0, devices: [['d0'], ['d1'], ['d2']], experts: [[0, 1], [2], [3]] });
    const step = { stage: 0, tokens: 10, dropped: [0, 0, 0, 0], allToAllBytes: 100, allToAllMs: 2 };
    load.record({ ...step, layer: 0, perExpert: [6, 5, 1, 8], perGroup: [11, 1, 8] });
    load.record({ ...step, layer: 1, perExpert: [4, 5, 1, 2], perGroup: [9, 1, 2] });
    const s = load.summary();
    expect(s.steps).toBe(2);
    expect(s.allToAllBytes).toBe(200);
    const stage = s.stages[0]!;
    expect(stage.perExpert).toEqual([10, 10, 2, 10]);
    expect(stage.perGroup).toEqual([20, 2, 10]);
    expect(stage.busiestGroup).toEqual({ group: 0, devices: ['d0'], rows: 20 });
    expect(stage.busiestExpert).toEqual({ expert: 0, tokens: 10 });
    // Moving expert 0 (10) to group 1 gives [10, 12, 10]: the busiest group falls from 20 to 12.
    expect(stage.moves).toEqual([{ stage: 0, expert: 0, fromGroup: 0, toGroup: 1 }]);
    expect(stage.maxGroupRowsAfter).toBe(12);
  });
});
