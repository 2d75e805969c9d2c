import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  argmaxRef,
  batchedMatmulRef,
  causalSoftmaxRef,
  rmsNormRef,
  ropeRef,
} from '../src/kernels/reference/transformer-ops.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuJsMode } from '../src/runtime/gpujs/gpujs-info.js';
import { expectClose, matmulTolerance, randomArray, type Tolerance } from './support/compare.js';

/**
 * The gpu.js transformer kernels where gpu.js itself is the risk (transformer-kernels.test.ts covers the
 * contract on every backend): loops past gpu.js's 1000-iteration cap, outputs big enough (>= 4096 cells) to
 * take the threaded path, indices recovered from a thread.y that folds in a batch, head or query block, and
 * constants that must be baked per cache key.
 */

const REDUCTION: Tolerance = { rtol: 2e-5, atol: 2e-6 };

function suite(mode: GpuJsMode) {
  describe(`gpu.js transformer kernels (${mode})`, () => {
    let group: DeviceGroup;
    beforeAll(async () => {
      group = await DeviceGroup.open({ backend: 'gpujs', count: 1, gpujsMode: mode });
    });
    afterAll(() => group?.destroy());
    const device = () => group.devices[0]!;
    const up = (data: Float32Array | Uint32Array, shape: number[], label = 'x') =>
      device().upload(data, shape, label);

    // The inner loops step by 4, so gpu.js's 1000-iteration cap would show only past K = 4000.
    it('batchedMatmul: K past 4000, many batches of one row and of blocks of four, threaded', async () => {
      for (const [batch, m, n, k, transposeB] of [
        [2, 3, 5, 4099, false],
        [2, 6, 9, 4099, true],
        [32, 1, 150, 64, true],
        [12, 9, 70, 33, false],
      ] as const) {
        const spare = 3;
        const stored = (transposeB ? n : k) + spare;
        const cols = transposeB ? k : n;
        const a = randomArray(batch * m * k, batch + m);
        const b = randomArray(batch * stored * cols, k + n);
        const out = await device().kernels.batchedMatmul(up(a, [batch, m, k]), up(b, [batch, stored, cols]), {
          transposeB,
          scale: 0.3,
          bRows: stored - spare,
        });
        const want = batchedMatmulRef(a, b, { batch, m, n, k, bStride: stored, transposeB, scale: 0.3 });
        expectClose(await out.read(), want, matmulTolerance(k));
      }
    });

    it('batchedMatmul bakes the layout and the scale per cache key', async () => {
      // Square per-batch B: both layouts take the same argument lengths and output.
      const a = randomArray(2 * 5 * 8, 1);
      const b = randomArray(2 * 8 * 8, 2);
      for (const [transposeB, scale] of [
        [false, 1],
        [true, 1],
        [true, 0.5],
        [false, -2],
      ] as const) {
        const out = await device().kernels.batchedMatmul(up(a, [2, 5, 8]), up(b, [2, 8, 8]), {
          transposeB,
          scale,
        });
        const want = batchedMatmulRef(a, b, { batch: 2, m: 5, n: 8, k: 8, bStride: 8, transposeB, scale });
        expectClose(await out.read(), want, matmulTolerance(8));
      }
    });

    it('rmsNorm over more rows than the threaded threshold and rows past 1000', async () => {
      for (const [rows, cols] of [
        [4100, 3],
        [5, 1500],
      ] as const) {
        const x = randomArray(rows * cols, cols);
        const w = randomArray(cols, 5);
        const out = await device().kernels.rmsNorm(up(x, [rows, cols]), up(w, [cols], 'w'), 1e-6);
        expectClose(await out.read(), rmsNormRef(x, rows, cols, w, 1e-6), { rtol: 1e-4, atol: 1e-5 });
      }
    });

    it('causalSoftmax: many query blocks (threaded stats), and offsets baked per cache key', async () => {
      const [blocks, queries, keys] = [512, 9, 12];
      const rows = blocks * queries;
      const x = randomArray(rows * keys, 3).map((v) => v * 4);
      for (const offset of [0, 3]) {
        const out = await device().kernels.causalSoftmax(up(x, [blocks, queries, keys]), {
          queries,
          offset,
          scale: 0.7,
        });
        expectClose(
          await out.read(),
          causalSoftmaxRef(x, { rows, keys, queries, offset, scale: 0.7 }),
          REDUCTION,
        );
      }
      // Visible keys past 1000, and the mask cutting a row at 1201 of 1300.
      const wide = randomArray(2 * 1300, 4);
      const out = await device().kernels.causalSoftmax(up(wide, [2, 1300]), { queries: 2, offset: 1200 });
      const want = causalSoftmaxRef(wide, { rows: 2, keys: 1300, queries: 2, offset: 1200, scale: 1 });
      expectClose(await out.read(), want, REDUCTION);
    });

    it('rope: heads folded into rows, theta baked per cache key', async () => {
      const [rows, heads, headDim] = [40, 4, 32];
      const x = randomArray(rows * heads * headDim, 6);
      const positions = Uint32Array.from({ length: rows }, (_, i) => (i * 37) % 101);
      for (const theta of [10_000, 1_000_000]) {
        const out = await device().kernels.rope(
          up(x, [rows, heads * headDim]),
          up(positions, [rows], 'pos'),
          { headDim, theta },
        );
        const want = ropeRef(x, positions, { rows, cols: heads * headDim, headDim }, theta);
        expectClose(await out.read(), want, { rtol: 1e-5, atol: 4e-5 });
      }
    });

    it('rope refuses positions that f32 cannot hold exactly', async () => {
      const x = up(randomArray(4, 1), [1, 4]);
      await expect(
        device().kernels.rope(x, up(Uint32Array.from([2 ** 24]), [1], 'pos'), { headDim: 4, theta: 10_000 }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('argmax: rows past 1000 columns, more rows than the threaded threshold, ties', async () => {
      const cols = 1500;
      const x = randomArray(3 * cols, 8);
      x[1499] = 5;
      x[cols + 1200] = 5;
      x[cols + 1300] = 5;
      x.fill(-1, 2 * cols);
      const out = await device().kernels.argmax(up(x, [3, cols]));
      expect(Array.from(await out.indices.read())).toEqual([1499, 1200, 0]);
      expectClose(await out.values.read(), [5, 5, -1], { rtol: 0, atol: 0 });

      const rows = 4500;
      const many = randomArray(rows * 7, 9).map((v) => Math.round(v * 3));
      const got = await device().kernels.argmax(up(many, [rows, 7]));
      const want = argmaxRef(many, rows, 7);
      expect(Array.from(await got.indices.read())).toEqual(Array.from(want.indices));
      expectClose(await got.values.read(), want.values, { rtol: 0, atol: 0 });
    });

    it('record one span per transformer kernel when profiling', async () => {
      const d = device();
      d.enableProfiling(true);
      try {
        const x = up(randomArray(12, 1), [3, 4]);
        await d.kernels.rmsNorm(x, up(randomArray(4, 2), [4], 'w'), 1e-5);
        await d.kernels.argmax(x);
        await d.kernels.writeCache(up(new Float32Array(24), [1, 6, 4], 'cache'), x, 2);
        await d.kernels.slice(x, 1, 1, 2);
        const spans = await d.takeSpans();
        expect(spans.map((s) => s.label)).toEqual(['rmsNorm', 'argmax', 'writeCache', 'slice']);
      } finally {
        d.enableProfiling(false);
      }
    });
  });
}

suite('webasm');
suite('cpu');
