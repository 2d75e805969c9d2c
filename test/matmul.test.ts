import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activation } from '../src/kernels/kernels.js';
import { matmulRef } from '../src/kernels/reference/reference-ops.js';
import { traitsOf } from '../src/kernels/webgpu/matmul-planner.js';
import type { WebGpuKernels } from '../src/kernels/webgpu/webgpu-kernels.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { expectClose, matmulMagnitude, matmulTolerance, randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();

// Shapes off every tile size, degenerate ones, and ones that span many workgroups.
const SHAPES: readonly [number, number, number][] = [
  [1, 1, 1],
  [1, 1, 7],
  [3, 5, 1],
  [5, 999, 517],
  [33, 77, 129],
  [64, 256, 64],
  [100, 300, 260],
  [257, 129, 515],
];

describe('the reference matmul', () => {
  it('equals one float64 dot product per element, to the bit, for any row count and with zero inputs', () => {
    for (const [m, k, n] of [...SHAPES, [4, 3, 2], [6, 9, 5], [7, 2, 3]] as const) {
      // Every fifth input zero, as after a ReLU: the reference skips zeros.
      const a = randomArray(m * k, m + k).map((v, i) => (i % 5 === 0 ? 0 : v));
      const b = randomArray(k * n, n);
      const bias = randomArray(n, 3);
      const want = new Float32Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let p = 0; p < k; p++) dot += a[i * k + p]! * b[p * n + j]!;
          want[i * n + j] = dot + bias[j]!;
        }
      }
      expect(matmulRef(a, b, m, n, k, bias), `${m}x${k} by ${k}x${n}`).toEqual(want);
    }
  });
});

describe.skipIf(!available)(`matmul on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(1);
  });
  afterAll(() => group?.destroy());

  async function check(
    m: number,
    k: number,
    n: number,
    variant?: string,
    activation: Activation = 'none',
    withBias = false,
  ) {
    const device = group.devices[0]!;
    const a = randomArray(m * k, m * 7 + k);
    const b = randomArray(k * n, n * 13 + k);
    const bias = withBias ? randomArray(n, n) : undefined;
    const ta = device.upload(a, [m, k], 'a');
    const tb = device.upload(b, [k, n], 'b');
    const tbias = bias ? device.upload(bias, [n], 'bias') : undefined;
    const out = await device.kernels.matmul(ta, tb, { bias: tbias, activation, variant });
    const got = await out.read();
    expect(out.shape).toEqual([m, n]);
    const scale = matmulMagnitude(a, b, m, n, k);
    if (bias)
      scale.forEach((s, i) => {
        scale[i] = s + Math.abs(bias[i % n]!);
      });
    expectClose(got, matmulRef(a, b, m, n, k, bias, activation), matmulTolerance(k), scale);
    for (const t of [ta, tb, tbias, out]) t?.free();
  }

  it('picks a variant by itself for every shape', async () => {
    for (const [m, k, n] of SHAPES) await check(m, k, n);
  });

  it('runs every variant the device supports on every shape, with every epilogue', async () => {
    const device = group.devices[0] as GpuDevice;
    if (device.backend !== 'webgpu') return;
    const planner = (device.kernels as WebGpuKernels).matmuls;
    const traits = traitsOf(device);
    const variants = planner.catalog.filter((v) => v.supports({ m: 1, n: 1, k: 1 }, traits));
    expect(variants.length).toBeGreaterThanOrEqual(3);
    for (const variant of variants) {
      for (const [m, k, n] of SHAPES) await check(m, k, n, variant.name);
      await check(37, 65, 131, variant.name, 'relu', true);
      await check(37, 65, 132, variant.name, 'gelu', true);
    }
  });
});
