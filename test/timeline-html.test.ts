import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { microbatchColor, timelineData, timelineHtml } from '../src/report/timeline-html.js';
import { runStrategy, type StrategyRun } from '../src/strategy/run-strategy.js';
import { cli, ensureBuilt, root } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const example = (name: string): unknown =>
  JSON.parse(readFileSync(join(root, 'examples', `${name}.json`), 'utf8'));

describe('the timeline HTML of a run', async () => {
  const available = await webGpuAvailable();
  let run: StrategyRun;

  beforeAll(async () => {
    if (!available) return;
    run = await runStrategy(example('vocab-parallel'), {
      backend: TEST_BACKEND,
      repeats: 1,
      sequentialBaseline: false,
    });
  });

  it.skipIf(!available)('draws every kernel and transfer of the trace, coloured by microbatch', () => {
    const data = timelineData(run);
    const events = (run.trace as { traceEvents: { ph: string; cat?: string }[] }).traceEvents;
    expect(data.spans.length).toBe(events.filter((e) => e.ph === 'X').length);
    expect(data.lanes).toEqual([...run.pipelined.devices.map((d) => d.name), 'host (transfers)']);
    const microbatches = new Set(data.spans.filter((s) => s.kind === 'kernel').map((s) => s.microbatch));
    expect([...microbatches].sort()).toEqual([0, 1, 2, 3]);

    const html = timelineHtml(data);
    expect(html.match(/<rect class="wp-span wp-kernel"/g)?.length).toBe(
      data.spans.filter((s) => s.kind === 'kernel').length,
    );
    expect(html.match(/<rect class="wp-span wp-transfer"/g)?.length).toBeGreaterThan(0);
    expect(html).toContain(`fill="${microbatchColor(3)}"`);
    expect(html.match(/<tr class="wp-device">/g)?.length).toBe(run.strategy.hardware.device_count);
    expect(html).toContain(`Verdict: ${data.verdict}`);
    // Self-contained: nothing is fetched from anywhere.
    expect(html).not.toMatch(/\s(src|href)=/);
  });

  it('escapes what it prints and marks a device over its cap', () => {
    const html = timelineHtml({
      title: '<script>alert(1)</script>',
      verdict: 'WRONG RESULTS',
      adapter: 'a & b',
      backend: 'webgpu',
      microbatches: 1,
      findings: [{ severity: 'error', code: 'MEMORY', message: 'x < y' }],
      checks: [{ against: 'the reference', maxAbsError: 1, tolerance: 1e-4, passed: false }],
      devices: [
        {
          id: 0,
          name: 'webgpu:0',
          utilization: 0.5,
          busyMs: 1,
          peakBytes: 2048,
          estimatedBytes: 1024,
          capBytes: 1024,
        },
      ],
      lanes: ['webgpu:0', 'host (transfers)'],
      spans: [
        { lane: 0, kind: 'kernel', label: 'matmul', element: 's', microbatch: 0, startMs: 0, endMs: 1 },
      ],
      wallMs: 1,
      predictedMs: 1,
      predictionErrorPercent: 0,
      sequentialWallMs: null,
    });
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&#60;script&#62;alert(1)');
    expect(html).toContain('a &#38; b');
    expect(html).toContain('class="wp-bar wp-over"');
    expect(html).toContain('FAILED');
  });
});

describe.skipIf(TEST_BACKEND !== 'webgpu')('run --html', async () => {
  const available = await webGpuAvailable();
  let dir = '';
  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'webgpu-parallel-html-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!available)('writes the self-contained timeline beside the report', () => {
    const file = join(dir, 'run.html');
    const r = cli('run', 'examples/vocab-parallel.json', '--html', file, '--no-baseline', '--no-progress');
    expect(r.status).toBe(0);
    const html = readFileSync(file, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<svg class="wp-timeline"');
    expect(html.match(/<rect class="wp-span wp-kernel"/g)?.length).toBeGreaterThan(8);
  });
});
