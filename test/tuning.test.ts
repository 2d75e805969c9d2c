import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autotuneMatmul, picksByClass, type TuneResult } from '../src/kernels/webgpu/autotune.js';
import { shapeClass } from '../src/kernels/webgpu/matmul-variants.js';
import { TuningCache } from '../src/kernels/webgpu/tuning-cache.js';
import type { WebGpuKernels } from '../src/kernels/webgpu/webgpu-kernels.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

function result(dims: [number, number, number], timings: Record<string, number>): TuneResult {
  const [m, k, n] = dims;
  const winner = Object.entries(timings).sort((a, b) => a[1] - b[1])[0]![0];
  return { shapeClass: shapeClass({ m, k, n }), dims: { m, k, n }, winner, timings };
}

describe('matmul shape classes', () => {
  it('keep 512^3 and 1024^3 apart, and round every dimension up to a power of two', () => {
    expect(shapeClass({ m: 512, k: 512, n: 512 })).toBe('m512-k512-n512');
    expect(shapeClass({ m: 1024, k: 1024, n: 1024 })).toBe('m1024-k1024-n1024');
    expect(shapeClass({ m: 600, k: 513, n: 1000 })).toBe('m1024-k1024-n1024');
    expect(shapeClass({ m: 256, k: 256, n: 1024 })).not.toBe(shapeClass({ m: 512, k: 256, n: 1024 }));
  });

  it('keep M exact up to 8 rows, where the kernel kinds change', () => {
    expect(shapeClass({ m: 1, k: 1024, n: 1024 })).toBe('m1-k1024-n1024');
    expect(shapeClass({ m: 7, k: 3, n: 5 })).toBe('m7-k4-n8');
    expect(shapeClass({ m: 9, k: 1, n: 1 })).toBe('m16-k1-n1');
  });
});

describe('picks per shape class', () => {
  it("is each shape's winner where a class holds one shape", () => {
    const picks = picksByClass([
      result([512, 512, 512], { a: 3, b: 2 }),
      result([1024, 1024, 1024], { a: 10, b: 20 }),
    ]);
    expect(picks).toEqual({ 'm512-k512-n512': 'b', 'm1024-k1024-n1024': 'a' });
  });

  it('weighs relative slowdowns where shapes share a class, not the biggest shape alone', () => {
    // 'a' wins the big shape by 10%, loses the small one 3x; 'b' is the better pick for the class.
    const picks = picksByClass([
      result([600, 600, 600], { a: 30, b: 10 }),
      result([1000, 1000, 1000], { a: 100, b: 110 }),
    ]);
    expect(picks).toEqual({ 'm1024-k1024-n1024': 'b' });
  });

  it('only picks a variant that ran on every shape of the class', () => {
    const picks = picksByClass([
      result([600, 600, 600], { a: 30, c: 1 }),
      result([1000, 1000, 1000], { a: 100, b: 90 }),
    ]);
    expect(picks).toEqual({ 'm1024-k1024-n1024': 'a' });
  });
});

describe.skipIf(!available)('the autotuner on WebGPU', () => {
  let group: DeviceGroup;
  let device: GpuDevice;
  const dir = mkdtempSync(join(tmpdir(), 'wp-tuning-'));

  beforeAll(async () => {
    group = await openTestGroup(1);
    device = group.devices[0] as GpuDevice;
  });
  afterAll(() => {
    group?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('times every supported variant, hands the planner one pick per class, and the cache keeps them', async () => {
    const shapes = [
      { m: 3, k: 40, n: 33 },
      { m: 70, k: 65, n: 129 },
      { m: 100, k: 120, n: 200 },
    ];
    const results = await autotuneMatmul(device, shapes, 1);
    const planner = (device.kernels as WebGpuKernels).matmuls;
    for (const [r, dims] of results.map((r, i) => [r, shapes[i]!] as const)) {
      expect(r.shapeClass).toBe(shapeClass(dims));
      expect(Object.keys(r.timings).length).toBeGreaterThan(1);
      for (const ms of Object.values(r.timings)) expect(ms).toBeGreaterThan(0);
      expect(r.timings[r.winner]).toBe(Math.min(...Object.values(r.timings)));
    }
    // The last two shapes share a class: the planner holds one pick for it, and uses it.
    expect(results[1]!.shapeClass).toBe(results[2]!.shapeClass);
    const picks = picksByClass(results);
    expect(Object.keys(picks)).toHaveLength(2);
    for (const [cls, variant] of Object.entries(picks)) expect(planner.tunedPicks[cls]).toBe(variant);
    expect(planner.choose(device, shapes[1]!).name).toBe(picks[results[1]!.shapeClass]);

    const cache = new TuningCache(join(dir, 'tuning.json'));
    cache.save(device.adapter, picks);
    expect(cache.picksFor(device.adapter)).toEqual(picks);
    expect(JSON.parse(readFileSync(cache.path, 'utf8'))).toBeTypeOf('object');
  });
});
