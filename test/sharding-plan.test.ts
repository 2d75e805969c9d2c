import { describe, expect, it } from 'vitest';
import { gridPlan, resolvePlan } from '../src/models/sharding-plan.js';
import { balancedSizes, splitHeads } from '../src/parallel/head-split.js';

describe('attention head split', () => {
  it('keeps whole KV groups where the split allows it', () => {
    // 8 heads over 2 KV heads on 2 devices: each device owns one KV head and its 4 query heads.
    expect(splitHeads(8, 2, 2)).toEqual([
      { qStart: 0, qCount: 4, kvHeads: [0], group: 4 },
      { qStart: 4, qCount: 4, kvHeads: [1], group: 4 },
    ]);
    // Fewer KV heads than devices: the KV head is replicated, each device reading it for its own queries.
    expect(splitHeads(8, 2, 4).map((r) => r.kvHeads)).toEqual([[0], [0], [1], [1]]);
  });

  it('repeats KV heads per query head where a device holds part of two KV groups', () => {
    // 6 heads, 2 KV heads (3 queries each) on 3 devices: the middle device has heads 2 (KV 0) and 3 (KV 1).
    expect(splitHeads(6, 2, 3)).toEqual([
      { qStart: 0, qCount: 2, kvHeads: [0], group: 2 },
      { qStart: 2, qCount: 2, kvHeads: [0, 1], group: 1 },
      { qStart: 4, qCount: 2, kvHeads: [1], group: 2 },
    ]);
    expect(splitHeads(6, 2, 2, [4, 2])).toEqual([
      { qStart: 0, qCount: 4, kvHeads: [0, 0, 0, 1], group: 1 },
      { qStart: 4, qCount: 2, kvHeads: [1], group: 2 },
    ]);
  });

  it('splits heads that do not divide as evenly as they can, and refuses more devices than heads', () => {
    expect(splitHeads(5, 1, 3).map((r) => r.qCount)).toEqual([2, 2, 1]);
    expect(balancedSizes(80, 3)).toEqual([27, 27, 26]);
    expect(() => splitHeads(2, 1, 3)).toThrow(/2 attention heads cannot be split over 3 devices/);
    expect(() => splitHeads(6, 2, 2, [5, 2])).toThrow(/add up to 7, not 6/);
  });
});

describe('sharding plans', () => {
  it('a TP x PP grid: consecutive devices per stage, layers as even as they split', () => {
    expect(gridPlan(2, 2, 5).stages).toEqual([
      { devices: [0, 1], layers: 3 },
      { devices: [2, 3], layers: 2 },
    ]);
    expect(resolvePlan(gridPlan(1, 3, 3), 3, 3).map((s) => s.firstLayer)).toEqual([0, 1, 2]);
  });

  it('refuses plans that do not fit the model or the devices, naming the field', () => {
    expect(() => gridPlan(1, 4, 3)).toThrow(/3 layers cannot fill 4 pipeline stages/);
    expect(() => resolvePlan({ stages: [{ devices: [0, 3], layers: 2 }] }, 2, 2)).toThrow(
      expect.objectContaining({ code: 'GROUP', where: 'plan.stages[0].devices[1]' }),
    );
    expect(() => resolvePlan({ stages: [{ devices: [0], layers: 1 }] }, 2, 1)).toThrow(
      /run 1 layers, the model has 2/,
    );
    expect(() => resolvePlan({ stages: [{ devices: [0, 1], layers: 2, heads: [6] }] }, 2, 2)).toThrow(
      expect.objectContaining({ code: 'SPLIT', where: 'plan.stages[0].heads' }),
    );
  });
});
