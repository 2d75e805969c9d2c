import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activation } from '../src/kernels/kernels.js';
import { matmulRef } from '../src/kernels/reference/reference-ops.js';
import { addResidualInPlace, addRmsNormRef, swigluRef } from '../src/kernels/reference/transformer-ops.js';
import { traitsOf } from '../src/kernels/webgpu/matmul-planner.js';
import type { WebGpuKernels } from '../src/kernels/webgpu/webgpu-kernels.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import {
  expectClose,
  matmulMagnitude,
  matmulTolerance,
  randomArray,
  type Tolerance,
} from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * The fused kernels (addRmsNorm; matmul's residual epilogue; swigluMatmul) on the test backend against the float64
 * reference, and against the unfused kernels they replace, which they must equal to the bit: the decoder
 * layer swaps one for the other. Shapes are off every tile, and some span many workgroups.
 */

const available = await webGpuAvailable();
const EXACT: Tolerance = { rtol: 0, atol: 0 };
/** f32 accumulation over up to a few thousand terms against float64 (as the rmsNorm tests). */
const REDUCTION: Tolerance = { rtol: 2e-5, atol: 2e-6 };

describe.skipIf(!available)(`fused kernels on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(1);
  });
  afterAll(() => group?.destroy());
  const device = () => group.devices[0]!;
  const up = (data: Float32Array, shape: number[], label = 'x') => device().upload(data, shape, label);

  it('addRmsNorm: both outputs against the reference and against add then rmsNorm', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [1, 512],
      [3, 7],
      [5, 65],
      [2, 1000],
      [17, 4099],
      // Many workgroups (one per row), past the 65535 of one grid dimension's fold into y.
      [70000, 3],
      [2100, 129],
    ] as const) {
      const x = randomArray(rows * cols, rows + cols);
      const residual = randomArray(rows * cols, 3 * rows + cols);
      const weight = randomArray(cols, cols + 7);
      const eps = 1e-5;
      const [tx, tr, tw] = [up(x, [rows, cols]), up(residual, [rows, cols], 'r'), up(weight, [cols], 'w')];
      const fused = await device().kernels.addRmsNorm(tx, tr, tw, eps, 'fused');
      expect(fused.sum.shape).toEqual([rows, cols]);
      expect(fused.normed.shape).toEqual([rows, cols]);
      const want = addRmsNormRef(x, residual, rows, cols, weight, eps);
      const sum = await fused.sum.read();
      const normed = await fused.normed.read();
      expectClose(sum, want.sum, EXACT);
      expectClose(normed, want.normed, REDUCTION);
      const added = await device().kernels.add(tx, tr);
      const plain = await device().kernels.rmsNorm(added, tw, eps);
      expectClose(sum, await added.read(), EXACT);
      expectClose(normed, await plain.read(), EXACT);
      for (const t of [tx, tr, tw, fused.sum, fused.normed, added, plain]) t.free();
    }
  });

  it('addRmsNorm: rows of any rank, no rows, and wrong shapes refused', async () => {
    const x = randomArray(2 * 3 * 5, 1);
    const r = randomArray(2 * 3 * 5, 2);
    const w = randomArray(5, 3);
    const fused = await device().kernels.addRmsNorm(up(x, [2, 3, 5]), up(r, [2, 3, 5]), up(w, [5]), 1e-6);
    expect(fused.normed.shape).toEqual([2, 3, 5]);
    expectClose(await fused.normed.read(), addRmsNormRef(x, r, 6, 5, w, 1e-6).normed, REDUCTION);
    const empty = await device().kernels.addRmsNorm(
      up(new Float32Array(0), [0, 5]),
      up(new Float32Array(0), [0, 5]),
      up(w, [5]),
      1e-6,
    );
    expect(empty.sum.shape).toEqual([0, 5]);
    expect(empty.normed.size).toBe(0);
    await expect(
      device().kernels.addRmsNorm(up(x, [6, 5]), up(r.subarray(0, 25), [5, 5]), up(w, [5]), 1e-6),
    ).rejects.toMatchObject({ code: 'SHAPE' });
    await expect(
      device().kernels.addRmsNorm(up(x, [6, 5]), up(r, [6, 5]), up(w.subarray(0, 4), [4]), 1e-6),
    ).rejects.toMatchObject({ code: 'SHAPE' });
  });

  async function checkResidual(
    m: number,
    k: number,
    n: number,
    variant?: string,
    activation: Activation = 'none',
    withBias = false,
  ): Promise<void> {
    const d = device();
    const a = randomArray(m * k, m * 7 + k);
    const b = randomArray(k * n, n * 13 + k);
    const r = randomArray(m * n, m + n);
    const bias = withBias ? randomArray(n, n) : undefined;
    const [ta, tb, tr] = [up(a, [m, k], 'a'), up(b, [k, n], 'b'), up(r, [m, n], 'r')];
    const tbias = bias ? up(bias, [n], 'bias') : undefined;
    const fused = await d.kernels.matmul(ta, tb, { bias: tbias, activation, residual: tr, variant });
    expect(fused.shape).toEqual([m, n]);
    const got = await fused.read();
    const want = addResidualInPlace(matmulRef(a, b, m, n, k, bias, activation), r);
    const scale = matmulMagnitude(a, b, m, n, k).map(
      (s, i) => s + Math.abs(r[i]!) + (bias ? Math.abs(bias[i % n]!) : 0),
    );
    expectClose(got, want, matmulTolerance(k), scale);
    // The same product, then the add kernel: what the decoder layer ran before the epilogue.
    const product = await d.kernels.matmul(ta, tb, { bias: tbias, activation, variant });
    const added = await d.kernels.add(product, tr);
    expectClose(got, await added.read(), EXACT);
    for (const t of [ta, tb, tr, tbias, fused, product, added]) t?.free();
  }

  const SHAPES = [
    [1, 1, 1],
    [1, 512, 512],
    [1, 1376, 512],
    [3, 7, 5],
    [5, 33, 130],
    [37, 65, 131],
    [64, 128, 256],
    [130, 257, 67],
  ] as const;

  it('matmul with a residual: the picked variant, every shape', async () => {
    for (const [m, k, n] of SHAPES) await checkResidual(m, k, n);
    await checkResidual(37, 65, 132, undefined, 'gelu', true);
  });

  it('matmul with a residual: every variant the device supports', async () => {
    const d = device() as GpuDevice;
    if (d.backend !== 'webgpu') return;
    const planner = (d.kernels as WebGpuKernels).matmuls;
    const traits = traitsOf(d);
    const variants = planner.catalog.filter((v) => v.supports({ m: 1, n: 1, k: 1 }, traits));
    expect(variants.length).toBeGreaterThanOrEqual(3);
    // Off the tile on every side, and a decode GEMV (each shape and epilogue compiles two pipelines).
    for (const variant of variants) {
      await checkResidual(1, 512, 260, variant.name);
      await checkResidual(37, 65, 131, variant.name, 'relu', true);
    }
  });

  it('matmul with a residual over K = 0 is the residual (plus the bias)', async () => {
    const r = randomArray(3 * 4, 9);
    const bias = randomArray(4, 10);
    const out = await device().kernels.matmul(
      up(new Float32Array(0), [3, 0]),
      up(new Float32Array(0), [0, 4]),
      {
        residual: up(r, [3, 4]),
        bias: up(bias, [4]),
      },
    );
    expectClose(
      await out.read(),
      Float32Array.from(r, (v, i) => bias[i % 4]! + v),
      EXACT,
    );
  });

  async function checkSwiglu(m: number, k: number, n: number): Promise<void> {
    const d = device();
    const x = randomArray(m * k, m + 3 * k);
    const g = randomArray(k * n, 5 * n + k);
    const u = randomArray(k * n, 7 * n + k);
    const [tx, tg, tu] = [up(x, [m, k]), up(g, [k, n], 'gate'), up(u, [k, n], 'up')];
    const fused = await d.kernels.swigluMatmul(tx, tg, tu, 'act');
    expect(fused.shape).toEqual([m, n]);
    const got = await fused.read();
    const want = swigluRef(matmulRef(x, g, m, n, k), matmulRef(x, u, m, n, k));
    // |silu(g)·u| errs by about |silu'(g)·u|·err(g) + |silu(g)|·err(u): both products' magnitudes bound it.
    const mg = matmulMagnitude(x, g, m, n, k);
    const mu = matmulMagnitude(x, u, m, n, k);
    expectClose(
      got,
      want,
      matmulTolerance(k),
      Float32Array.from(mg, (v, i) => (v + 1) * (mu[i]! + 1)),
    );
    // What the MLP ran before: both products, then swiglu.
    const gate = await d.kernels.matmul(tx, tg);
    const upOut = await d.kernels.matmul(tx, tu);
    const act = await d.kernels.swiglu(gate, upOut);
    expectClose(got, await act.read(), EXACT);
    for (const t of [tx, tg, tu, fused, gate, upOut, act]) t.free();
  }

  it('swigluMatmul: decode rows (one kernel on WebGPU) and prefill rows, against the reference', async () => {
    for (const [m, k, n] of [
      [1, 1, 1],
      [1, 512, 1376],
      [1, 65, 131],
      [2, 33, 70],
      [4, 128, 260],
      // Past small_m's reach: the tiled products and swiglu.
      [37, 65, 131],
    ] as const) {
      await checkSwiglu(m, k, n);
    }
    const empty = await device().kernels.swigluMatmul(
      up(new Float32Array(0), [0, 4]),
      up(randomArray(12, 1), [4, 3]),
      up(randomArray(12, 2), [4, 3]),
    );
    expect(empty.shape).toEqual([0, 3]);
    await expect(
      device().kernels.swigluMatmul(
        up(randomArray(8, 1), [2, 4]),
        up(randomArray(12, 2), [4, 3]),
        up(randomArray(8, 3), [4, 2]),
      ),
    ).rejects.toMatchObject({ code: 'SHAPE' });
  });

  it('the gated small_m kernel, every small_m variant, equals matmul, matmul and swiglu', async () => {
    const d = device() as GpuDevice;
    if (d.backend !== 'webgpu') return;
    const planner = (d.kernels as WebGpuKernels).matmuls;
    const variants = planner.catalog.filter((v) => v.kind === 'small_m');
    expect(variants.length).toBeGreaterThanOrEqual(2);
    for (const variant of variants) {
      for (const [m, k, n] of [
        [1, 130, 260],
        [3, 33, 67],
        [9, 17, 1030],
      ] as const) {
        const x = randomArray(m * k, m + k);
        const g = randomArray(k * n, n + 1);
        const u = randomArray(k * n, n + 2);
        const [tx, tg, tu] = [up(x, [m, k]), up(g, [k, n], 'gate'), up(u, [k, n], 'up')];
        const out = d.empty([m, n], 'f32', 'gated');
        await planner.encode(
          d,
          { m, n, k },
          {
            a: (tx as GpuTensor).buffer,
            b: (tg as GpuTensor).buffer,
            up: (tu as GpuTensor).buffer,
            out: (out as GpuTensor).buffer,
            bias: undefined,
            activation: 'none',
            variant: variant.name,
          },
        );
        const gate = await d.kernels.matmul(tx, tg, { variant: variant.name });
        const upOut = await d.kernels.matmul(tx, tu, { variant: variant.name });
        const act = await d.kernels.swiglu(gate, upOut);
        expectClose(await out.read(), await act.read(), EXACT);
        for (const t of [tx, tg, tu, out, gate, upOut, act]) t.free();
      }
    }
    await expect(
      planner.encode(
        d,
        { m: 1, n: 4, k: 4 },
        {
          a: (up(randomArray(4, 1), [1, 4]) as GpuTensor).buffer,
          b: (up(randomArray(16, 2), [4, 4]) as GpuTensor).buffer,
          up: (up(randomArray(16, 3), [4, 4]) as GpuTensor).buffer,
          out: (d.empty([1, 4], 'f32', 'o') as GpuTensor).buffer,
          bias: undefined,
          activation: 'none',
          variant: planner.catalog.find((v) => v.kind !== 'small_m')!.name,
        },
      ),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('matmul refuses a residual of another shape', async () => {
    await expect(
      device().kernels.matmul(up(randomArray(6, 1), [2, 3]), up(randomArray(12, 2), [3, 4]), {
        residual: up(randomArray(8, 3), [4, 2]),
      }),
    ).rejects.toMatchObject({ code: 'SHAPE' });
  });
});
