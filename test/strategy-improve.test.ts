import { describe, expect, it } from 'vitest';
import { checkStrategy } from '../src/strategy/check-strategy.js';
import { buildCostModel, predictElementMs, predictWallMs } from '../src/strategy/cost-model.js';
import { hasErrors } from '../src/strategy/findings.js';
import { probeMicrobatches, proportionalSizes, wallNoise } from '../src/strategy/improve.js';
import { improveStrategy } from '../src/strategy/improve-run.js';
import type { PipelineMeasurement } from '../src/strategy/measure.js';
import { estimateModelMemory } from '../src/strategy/model-estimate.js';
import { pipelineElements } from '../src/strategy/schedule.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();

/**
 * llama-tiny on two tensor-parallel stages, a microbatch per sequence: each microbatch pays two host
 * all-reduces a layer and every dispatch, for 8 tokens of work.
 */
const unbalanced = {
  name: 'tiny unbalanced',
  hardware: { device_count: 4, memory_per_device_bytes: 64 * 2 ** 20 },
  model: { preset: 'llama-tiny' },
  batch: { batch_size: 8, seq_len: 8, microbatches: 8 },
  stages: [
    { name: 'front', devices: [0, 1], layers: [0, 0] },
    { name: 'back', devices: [2, 3], layers: [1, 1] },
  ],
};

/** The largest device's predicted bytes for `strategy`. */
function predictedPeak(strategy: unknown): number {
  const checked = checkStrategy(strategy);
  if (checked.family !== 'model') throw new Error('a model strategy');
  return Math.max(
    ...estimateModelMemory(checked.strategy!, checked.source!.config, checked.plans).map((m) => m.total),
  );
}

describe('improve: pure parts', () => {
  it('splits in proportion to speed, at least one each, summing to the total', () => {
    expect(proportionalSizes(8, [1, 1])).toEqual([4, 4]);
    expect(proportionalSizes(8, [3, 1])).toEqual([6, 2]);
    expect(proportionalSizes(5, [100, 1])).toEqual([4, 1]);
    expect(proportionalSizes(7, [1, 1, 1]).reduce((a, b) => a + b, 0)).toBe(7);
  });

  it('takes the noise of repeated runs without the one farthest from their median', () => {
    // One stalled run of three: the spread of the other two.
    expect(wallNoise([122.3, 125.9, 181.3])).toBeCloseTo((125.9 - 122.3) / 122.3, 9);
    expect(wallNoise([60, 100, 101])).toBeCloseTo(1 / 100, 9);
    // Two runs have no run to leave out.
    expect(wallNoise([100, 150])).toBeCloseTo(0.5, 9);
    expect(wallNoise([100])).toBe(0);
  });

  it('probes from a quarter of the file’s microbatch count (above it from 1)', () => {
    expect(probeMicrobatches(8, 8)).toBe(2);
    expect(probeMicrobatches(8, 4)).toBe(1);
    expect(probeMicrobatches(6, 3)).toBe(1);
    expect(probeMicrobatches(16, 16)).toBe(4);
    expect(probeMicrobatches(8, 1)).toBe(2);
    expect(probeMicrobatches(1, 1)).toBeNull();
  });

  it('the cost model splits fixed and per-token costs from two microbatch sizes and moves layers', () => {
    const checked = checkStrategy({
      ...unbalanced,
      model: { preset: 'llama-small' },
      stages: [
        { name: 'front', devices: [0], layers: [0, 0] },
        { name: 'back', devices: [1], layers: [1, 3] },
      ],
    });
    if (checked.family !== 'model') throw new Error('a model strategy');
    const elements = pipelineElements(checked.plans, checked.communications);
    // Stage times per microbatch measured at 8 tokens and at 16: t = fixed + perToken * tokens.
    const measure = (front: number, comm: number, back: number, m: number): PipelineMeasurement =>
      ({
        wallMs: front + comm + back + (m - 1) * back,
        concurrency: 1,
        smallKernelMs: 0,
        elements: [front, comm, back].map((t) => ({ medianMs: t, medianBusyMs: t, kernelsPerMicrobatch: 1 })),
      }) as unknown as PipelineMeasurement;
    const layers = new Map([
      [0, { layers: 1, share: 1 }],
      [2, { layers: 3, share: 1 }],
    ]);
    const model = buildCostModel(measure(10 + 1 * 8, 1, 30 + 3 * 8, 8), elements, {
      tokensPerMicrobatch: 8,
      microbatches: 8,
      sharedCores: false,
      layers,
      probe: { measured: measure(10 + 1 * 16, 1, 30 + 3 * 16, 4), tokensPerMicrobatch: 16 },
    });
    expect(model.elements[0]!.fixedMs).toBeCloseTo(10, 6);
    expect(model.elements[0]!.perTokenMs).toBeCloseTo(1, 6);
    expect(model.elements[2]!.fixedMs).toBeCloseTo(30, 6);
    // The measured configuration predicts itself; 2 layers a stage even the per-layer times.
    expect(predictWallMs(model, { microbatches: 8, layers: [1, 3] })).toBeCloseTo(18 + 1 + 54 * 8, 6);
    const even = predictElementMs(model, { microbatches: 8, layers: [2, 2] });
    expect(even[0]).toBeCloseTo(36, 6);
    expect(even[2]).toBeCloseTo(36, 6);
    expect(predictWallMs(model, { microbatches: 8, layers: [2, 2] })).toBeLessThan(
      predictWallMs(model, { microbatches: 8, layers: [1, 3] }),
    );
  });
});

describe.skipIf(!available)(`improve on ${TEST_BACKEND}`, () => {
  it('derives a valid, faster strategy from a measured run and runs it in the same process', async () => {
    const result = await improveStrategy(unbalanced, { backend: TEST_BACKEND, repeats: 3 });
    expect(result.probe?.strategy.batch.microbatches).toBe(2);
    expect(result.improved).not.toBeNull();
    expect(hasErrors(checkStrategy(result.improved).findings)).toBe(false);
    expect(result.moves.map((m) => m.kind)).toContain('microbatches');
    for (const run of [result.before, result.after!]) {
      expect(run.checks.length).toBeGreaterThan(0);
      for (const c of run.checks) expect(c.passed, c.against).toBe(true);
    }
    expect(result.after!.strategy.batch.microbatches).toBeLessThan(8);
    // Eight one-sequence microbatches of llama-tiny are all per-microbatch cost: far fewer win clearly.
    expect(result.speedup!).toBeGreaterThan(1);
    expect(result.declined.some((d) => d.startsWith('Split sizes') || d.startsWith('Split of'))).toBe(
      result.before.sharing.oneAdapter,
    );
  });

  it('proposes nothing that fails validation: a microbatch count past the memory cap is dropped', async () => {
    // A cap between what 8 microbatches and what 1 microbatch of the whole batch need.
    const one = { ...unbalanced, batch: { ...unbalanced.batch, microbatches: 1 } };
    const cap = Math.floor((predictedPeak(unbalanced) + predictedPeak(one)) / 2);
    const tight = { ...unbalanced, hardware: { device_count: 4, memory_per_device_bytes: cap } };
    expect(hasErrors(checkStrategy(tight).findings)).toBe(false);
    expect(hasErrors(checkStrategy({ ...one, hardware: tight.hardware }).findings)).toBe(true);
    const result = await improveStrategy(tight, { backend: TEST_BACKEND, repeats: 1, checkOutputs: false });
    if (result.improved) {
      expect(hasErrors(checkStrategy(result.improved).findings)).toBe(false);
      expect(result.after!.strategy.batch.microbatches).toBeGreaterThan(1);
    } else expect(result.declined.length).toBeGreaterThan(0);
  });
});
