import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activation } from '../src/kernels/kernels.js';
import {
  addRef,
  embeddingRef,
  layerNormRef,
  matmulRef,
  meanRowsRef,
  scaleRef,
  softmaxRef,
  sumRef,
} from '../src/kernels/reference/reference-ops.js';
import type { Device } from '../src/runtime/device.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuJsMode } from '../src/runtime/gpujs/gpujs-info.js';
import {
  expectClose,
  matmulMagnitude,
  matmulTolerance,
  randomArray,
  type Tolerance,
} from './support/compare.js';

/**
 * Every kernel of the gpu.js backend against the CPU reference. Shapes: off every block size (the matmul
 * computes 4 rows per thread and unrolls K by 4; webasm vectorizes 4 columns), degenerate (1x1, K=1), big
 * enough to take gpu.js's threaded path (>= 4096 output cells), and with loops past gpu.js's 1000-iteration
 * cap (which only loops bounded by constants escape).
 */

/** Exact operations in f32 (copies, one add, one multiply by an f32-rounded factor). */
const ELEMENTWISE: Tolerance = { rtol: 1e-6, atol: 1e-7 };
/** f32 accumulation over up to ~1500 terms against float64 (mean, sum, layerNorm and softmax stats). */
const REDUCTION: Tolerance = { rtol: 2e-5, atol: 2e-6 };

const MATMUL_SHAPES: readonly [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 1],
  [3, 1, 5],
  [5, 4101, 7],
  [33, 129, 77],
  [130, 65, 9],
  [67, 260, 301],
];

async function checkMatmul(
  device: Device,
  m: number,
  k: number,
  n: number,
  activation: Activation,
  withBias: boolean,
) {
  const a = randomArray(m * k, m * 7 + k);
  const b = randomArray(k * n, n * 13 + k);
  const bias = withBias ? randomArray(n, n + 5) : undefined;
  const ta = device.upload(a, [m, k], 'a');
  const tb = device.upload(b, [k, n], 'b');
  const tbias = bias ? device.upload(bias, [n], 'bias') : undefined;
  const out = await device.kernels.matmul(ta, tb, { bias: tbias, activation });
  expect(out.shape).toEqual([m, n]);
  const scale = matmulMagnitude(a, b, m, n, k);
  if (bias)
    scale.forEach((s, i) => {
      scale[i] = s + Math.abs(bias[i % n]!);
    });
  expectClose(await out.read(), matmulRef(a, b, m, n, k, bias, activation), matmulTolerance(k), scale);
  for (const t of [ta, tb, tbias, out]) t?.free();
}

function kernelSuite(mode: GpuJsMode, full: boolean) {
  describe(`gpu.js kernels (${mode})`, () => {
    let group: DeviceGroup;
    beforeAll(async () => {
      group = await DeviceGroup.open({ backend: 'gpujs', count: 1, gpujsMode: mode });
    });
    afterAll(() => group?.destroy());
    const device = () => group.devices[0]!;

    it('matmul matches the reference on every shape, with every epilogue', async () => {
      const shapes = full ? MATMUL_SHAPES : MATMUL_SHAPES.slice(0, 5);
      for (const [m, k, n] of shapes) await checkMatmul(device(), m, k, n, 'none', false);
      for (const activation of ['relu', 'gelu'] as const) {
        await checkMatmul(device(), 37, 65, 131, activation, true);
        await checkMatmul(device(), 1, 1, 1, activation, true);
      }
    });

    it('embedding gathers rows and gives zero rows outside [rowOffset, rowOffset + rows)', async () => {
      for (const [vocab, hidden, tokens, offset] of [
        [1, 1, 1, 0],
        [50, 33, 7, 3],
        [97, 129, 300, 40],
      ] as const) {
        const table = randomArray(vocab * hidden, vocab);
        const ids = Uint32Array.from({ length: tokens }, (_, i) => (i * 7919) % (vocab + offset + 13));
        ids[0] = 0xffffffff;
        const out = await device().kernels.embedding(
          device().upload(table, [vocab, hidden], 'table'),
          device().upload(ids, [tokens], 'ids'),
          { rowOffset: offset },
        );
        expect(out.shape).toEqual([tokens, hidden]);
        expectClose(await out.read(), embeddingRef(table, hidden, vocab, ids, offset), { rtol: 0, atol: 0 });
      }
    });

    it('add (same shape and row broadcast), scale and sum match the reference', async () => {
      for (const [rows, cols] of [
        [1, 1],
        [37, 13],
        [131, 257],
      ] as const) {
        const x = randomArray(rows * cols, rows + cols);
        const y = randomArray(rows * cols, rows * cols);
        const r = randomArray(cols, cols);
        const tx = device().upload(x, [rows, cols], 'x');
        const ty = device().upload(y, [rows, cols], 'y');
        const tr = device().upload(r, [cols], 'row');
        expectClose(await (await device().kernels.add(tx, ty)).read(), addRef(x, y), ELEMENTWISE);
        expectClose(await (await device().kernels.add(tx, tr)).read(), addRef(x, r), ELEMENTWISE);
        expectClose(await (await device().kernels.scale(tx, 0.3)).read(), scaleRef(x, 0.3), ELEMENTWISE);
        const sum = await device().kernels.sum([tx, ty, tx]);
        expect(sum.shape).toEqual([rows, cols]);
        expectClose(await sum.read(), sumRef([x, y, x]), ELEMENTWISE);
        expectClose(await (await device().kernels.sum([ty])).read(), y, ELEMENTWISE);
      }
    });

    it('meanRows, layerNorm and softmax match the reference, also on rows past 1000 elements', async () => {
      for (const [rows, cols, per] of [
        [1, 1, 1],
        [12, 37, 4],
        [1201, 3, 1201],
        [40, 1500, 8],
      ] as const) {
        const x = randomArray(rows * cols, rows * 31 + cols);
        const gamma = randomArray(cols, cols + 1);
        const beta = randomArray(cols, cols + 2);
        const tx = device().upload(x, [rows, cols], 'x');
        const mean = await device().kernels.meanRows(tx, per);
        expect(mean.shape).toEqual([rows / per, cols]);
        expectClose(await mean.read(), meanRowsRef(x, rows / per, per, cols), REDUCTION);
        const norm = await device().kernels.layerNorm(
          tx,
          device().upload(gamma, [cols], 'g'),
          device().upload(beta, [cols], 'b'),
        );
        expectClose(await norm.read(), layerNormRef(x, rows, cols, gamma, beta, 1e-5), {
          rtol: 1e-4,
          atol: 1e-5,
        });
        expectClose(await (await device().kernels.softmax(tx)).read(), softmaxRef(x, rows, cols), REDUCTION);
      }
    });

    it('bakes constants per cache key: a second factor or offset is not the first one', async () => {
      const x = randomArray(40, 9);
      const tx = device().upload(x, [5, 8], 'x');
      expectClose(await (await device().kernels.scale(tx, 2)).read(), scaleRef(x, 2), ELEMENTWISE);
      expectClose(await (await device().kernels.scale(tx, -3)).read(), scaleRef(x, -3), ELEMENTWISE);
      const table = randomArray(12, 3);
      const ids = Uint32Array.from([0, 1, 2, 3, 4, 5]);
      for (const rowOffset of [0, 2, 4]) {
        const out = await device().kernels.embedding(
          device().upload(table, [4, 3], 't'),
          device().upload(ids, [6], 'ids'),
          {
            rowOffset,
          },
        );
        expectClose(await out.read(), embeddingRef(table, 3, 4, ids, rowOffset), { rtol: 0, atol: 0 });
      }
    });
  });
}

kernelSuite('webasm', true);
kernelSuite('cpu', false);

describe('gpu.js devices', () => {
  it('describe themselves, keep a ledger, and refuse tensors beyond their budget', async () => {
    const group = await DeviceGroup.open({ backend: 'gpujs', count: 2, memoryBudgetBytes: 4096 });
    try {
      const [d0, d1] = group.devices as [Device, Device];
      expect(group.backend).toBe('gpujs');
      expect(d0.adapter.name).toMatch(/^gpu\.js \d+\.\d+\.\d+ \((webasm|cpu)\)$/);
      expect(d0.kernels).not.toBe(d1.kernels);
      expect(() => d0.upload(new Float32Array(1025), [1025], 'big')).toThrow(
        expect.objectContaining({ code: 'MEMORY_BUDGET' }),
      );
      // Inputs fit (2 * 2 KiB), the product would not: the kernel fails before anything is adopted.
      const a = d0.upload(new Float32Array(512), [16, 32], 'a');
      const b = d0.upload(new Float32Array(512), [32, 16], 'b');
      expect(d0.ledger.usedBytes).toBe(4096);
      await expect(d0.kernels.matmul(a, b)).rejects.toMatchObject({ code: 'MEMORY_BUDGET' });
      expect(d0.ledger.usedBytes).toBe(4096);
      b.free();
      const c = await d0.kernels.scale(a, 2);
      expect(d0.ledger.usedBytes).toBe(4096);
      c.free();
      a.free();
      expect(d0.ledger.usedBytes).toBe(0);
    } finally {
      group.destroy();
    }
  });

  it('refuse operands from another device', async () => {
    const group = await DeviceGroup.open({ backend: 'gpujs', count: 2 });
    try {
      const [d0, d1] = group.devices as [Device, Device];
      const a = d0.upload(randomArray(6, 1), [2, 3], 'a');
      const b = d1.upload(randomArray(6, 2), [3, 2], 'b');
      await expect(d0.kernels.matmul(a, b)).rejects.toMatchObject({ code: 'DEVICE_MISMATCH' });
      await expect(d1.kernels.add(b, d1.upload(randomArray(6, 3), [3, 2], 'c'))).resolves.toBeDefined();
      await expect(d1.kernels.sum([b, a])).rejects.toMatchObject({ code: 'DEVICE_MISMATCH' });
    } finally {
      group.destroy();
    }
  });

  it('refuse operands past 2^24 elements, which gpu.js cannot index exactly', async () => {
    const group = await DeviceGroup.open({ backend: 'gpujs', count: 1 });
    try {
      const d = group.devices[0]!;
      const big = d.upload(new Float32Array(2 ** 24), [2 ** 12, 2 ** 12], 'big');
      await expect(d.kernels.scale(big, 2)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      big.free();
    } finally {
      group.destroy();
    }
  });

  it('record one span per kernel when profiling', async () => {
    const group = await DeviceGroup.open({ backend: 'gpujs', count: 1 });
    try {
      const d = group.devices[0]!;
      d.enableProfiling(true);
      d.setProfileTag('step');
      const x = d.upload(randomArray(12, 4), [3, 4], 'x');
      await d.kernels.softmax(x);
      await d.kernels.matmul(x, d.upload(randomArray(8, 5), [4, 2], 'w'));
      const spans = await d.takeSpans();
      expect(spans.map((s) => s.label)).toEqual(['softmax', 'matmul']);
      expect(spans.every((s) => s.tag === 'step' && s.endNs >= s.startNs)).toBe(true);
    } finally {
      group.destroy();
    }
  });
});
