import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import { reportJson, reportMarkdown } from '../src/strategy/report.js';
import { runStrategy } from '../src/strategy/run-strategy.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();
const seedFits = JSON.parse(readFileSync(new URL('../examples/seed-fits.json', import.meta.url), 'utf8'));

describe.skipIf(!available)(`strategy runner on ${TEST_BACKEND}`, () => {
  it('runs the seed fitting variant on 3 devices with 8 microbatches, matching the CPU reference', async () => {
    const run = await runStrategy(seedFits, { backend: TEST_BACKEND });
    expect(run.backend).toBe(TEST_BACKEND);
    expect(run.maxAbsError).toBeLessThanOrEqual(run.tolerance);
    const p = run.pipelined;
    expect(p.devices.map((d) => d.device)).toEqual([0, 1, 2]);
    for (const d of p.devices) {
      expect(d.busyMs).toBeGreaterThan(0);
      expect(d.utilization).toBeGreaterThan(0);
      expect(d.utilization).toBeLessThanOrEqual(1);
      expect(d.peakBytes).toBeGreaterThan(0);
      expect(d.peakBytes).toBeLessThanOrEqual(run.strategy.hardware.memory_per_device_bytes);
    }
    expect(p.elements.map((e) => e.name)).toEqual([
      'embed_1',
      'embed_to_expert',
      'expert_2',
      'expert_to_agg',
      'agg_3',
    ]);
    for (const e of p.elements) expect(e.perMicrobatchMs).toHaveLength(8);
    expect(p.elements[1]!.hostBytesPerMicrobatch).toBeGreaterThan(0);
    // Transfers are timed from when their sources were ready; the wait is reported beside them.
    for (const e of p.elements.filter((x) => x.kind === 'comm'))
      expect(e.medianWaitMs).toBeGreaterThanOrEqual(0);
    expect(p.commMs).toBeLessThanOrEqual(p.wallMs);
    // Linux reports the host thread's own CPU time; elsewhere the figure is absent, not guessed.
    if (process.platform === 'linux') {
      expect(p.hostCpuMs).toBeGreaterThan(0);
      expect(p.hostBusyFraction).toBeLessThanOrEqual(1.05);
    }
    expect(p.predictedMs).toBeGreaterThan(0);
    expect(Number.isFinite(p.predictionErrorPercent)).toBe(true);
    expect(p.idealBubbleFraction).toBeCloseTo(4 / 12, 6);
    expect(run.sequentialWallMs).toBeGreaterThan(0);

    const md = reportMarkdown(run, 'examples/seed-fits.json');
    for (const heading of [
      'Executive Summary',
      'Compatibility',
      'Measured Performance',
      'Load Distribution',
      'Claims vs Measured',
      'Recommendations',
    ]) {
      expect(md).toContain(`## ${heading}`);
    }
    expect(md).toMatch(/claimed 95\.0%, measured \d+\.\d%/);
    expect(md).toMatch(/\| embed_to_expert \| comm \| [\d.]+ ms \| [\d.]+ ms \| 1 MiB \|/);
    if (process.platform === 'linux')
      expect(md).toMatch(/Host thread .* on the CPU [\d.]+ ms, [\d.]+% of the wall time/);
    expect(md).toMatch(/\| 1 \| embed_1, expert_2 \| [\d.]+ ms \| [\d.]+% \|/);
    const json = reportJson(run) as { verdict: string; recommendations: string[] };
    expect(['SOUND', 'SOUND, CLAIMS NOT MET']).toContain(json.verdict);
    expect(json.recommendations.length).toBeGreaterThan(0);
    const trace = run.trace as { traceEvents: { tid: number; ph: string }[] };
    expect(new Set(trace.traceEvents.filter((e) => e.ph === 'X').map((e) => e.tid)).size).toBe(4);
  });

  it('refuses an invalid strategy before opening a device, with the findings', async () => {
    const error = await runStrategy({
      ...seedFits,
      hardware: { device_count: 3, memory_per_device_bytes: 16 * 2 ** 20 },
    }).catch((e) => e);
    expect(isParallelError(error, 'STRATEGY')).toBe(true);
    expect(error.findings.some((f: { code: string }) => f.code === 'MEMORY_OVER_CAP')).toBe(true);
  });

  it.each(['balanced-3dev.json', 'vocab-parallel.json', 'data-parallel-agg.json', 'megatron-mlp.json'])(
    'runs %s (uneven splits, vocab-parallel, replicas, a direct handoff) and matches the reference',
    async (file) => {
      const strategy = JSON.parse(readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8'));
      const run = await runStrategy(strategy, {
        backend: TEST_BACKEND,
        microbatches: 4,
        sequentialBaseline: false,
      });
      expect(run.maxAbsError).toBeLessThanOrEqual(run.tolerance);
      expect(run.pipelined.elements.every((e) => e.perMicrobatchMs.length > 0)).toBe(true);
    },
  );
});
