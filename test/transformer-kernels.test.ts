import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  argmaxRef,
  batchedMatmulRef,
  causalSoftmaxRef,
  mulRef,
  rmsNormRef,
  ropeRef,
  routerTopKRef,
  siluRef,
  swigluRef,
  transpose01Ref,
  writeCacheRef,
} from '../src/kernels/reference/transformer-ops.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { expectClose, matmulTolerance, randomArray, type Tolerance } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * The transformer kernels on the test backend against the float64 reference. Shapes are off every tile
 * (1, 3, 7, 33, 65 ...), and some span many workgroups (thousands of rows, rows of thousands of columns).
 */

const available = await webGpuAvailable();
const EXACT: Tolerance = { rtol: 0, atol: 0 };
/** One f32 multiply or a transcendental (exp, sin, cos) in f32 against float64. */
const ELEMENTWISE: Tolerance = { rtol: 2e-6, atol: 1e-6 };
/** f32 accumulation over up to a few thousand terms against float64. */
const REDUCTION: Tolerance = { rtol: 2e-5, atol: 2e-6 };

describe.skipIf(!available)(`transformer kernels on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(1);
  });
  afterAll(() => group?.destroy());
  const device = () => group.devices[0]!;
  const up = (data: Float32Array | Uint32Array, shape: number[], label = 'x') =>
    device().upload(data, shape, label);

  it('batchedMatmul: plain and with B transposed, scaled, over part of a capacity', async () => {
    for (const [batch, m, n, k] of [
      [1, 1, 1, 1],
      [3, 7, 5, 9],
      [2, 65, 33, 17],
      [4, 130, 70, 64],
      [1, 300, 257, 129],
      // Row counts and widths that are multiples of 4 take the vec4 loads: decode (m < 4) and prefill tiles.
      [3, 1, 36, 20],
      [2, 3, 64, 128],
      [2, 37, 68, 12],
    ] as const) {
      for (const transposeB of [false, true]) {
        for (const spare of [0, 5]) {
          const a = randomArray(batch * m * k, m + k);
          // b holds `spare` more rows per batch than the product uses, as a KV cache with room left.
          const stored = (transposeB ? n : k) + spare;
          const cols = transposeB ? k : n;
          const b = randomArray(batch * stored * cols, n + 3);
          const scale = transposeB ? 0.125 : 1;
          const out = await device().kernels.batchedMatmul(
            up(a, [batch, m, k]),
            up(b, [batch, stored, cols]),
            {
              transposeB,
              scale,
              bRows: stored - spare,
            },
          );
          expect(out.shape).toEqual([batch, m, n]);
          const want = batchedMatmulRef(a, b, { batch, m, n, k, bStride: stored, transposeB, scale });
          expectClose(await out.read(), want, matmulTolerance(k));
        }
      }
    }
  });

  it('rmsNorm per row, narrow and wide rows', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [3, 7],
      [130, 48],
      [2, 3001],
      [1100, 65],
    ] as const) {
      const x = randomArray(rows * cols, cols).map((v) => v * 3 + 0.5);
      const w = randomArray(cols, 2);
      const out = await device().kernels.rmsNorm(up(x, [rows, cols]), up(w, [cols], 'w'), 1e-5);
      expectClose(await out.read(), rmsNormRef(x, rows, cols, w, 1e-5), { rtol: 1e-4, atol: 1e-5 });
    }
  });

  it('silu, swiglu and mul, including a row broadcast and a size past one grid dimension', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [7, 33],
      [1, 70_001],
    ] as const) {
      const a = randomArray(rows * cols, 1).map((v) => v * 8);
      const b = randomArray(rows * cols, 2);
      const row = randomArray(cols, 3);
      const ta = up(a, [rows, cols]);
      const tb = up(b, [rows, cols], 'b');
      expectClose(await (await device().kernels.silu(ta)).read(), siluRef(a), ELEMENTWISE);
      expectClose(await (await device().kernels.swiglu(ta, tb)).read(), swigluRef(a, b), ELEMENTWISE);
      expectClose(await (await device().kernels.mul(ta, tb)).read(), mulRef(a, b), ELEMENTWISE);
      expectClose(
        await (await device().kernels.mul(ta, up(row, [cols], 'row'))).read(),
        mulRef(a, row),
        ELEMENTWISE,
      );
    }
  });

  it('rope: rotate-half per head at given positions, large positions and theta', async () => {
    for (const [rows, heads, headDim, theta, start] of [
      [1, 1, 2, 10_000, 0],
      [5, 3, 8, 10_000, 0],
      [33, 2, 64, 500_000, 7],
      [1, 8, 128, 10_000, 1000],
    ] as const) {
      const x = randomArray(rows * heads * headDim, rows + heads);
      const positions = Uint32Array.from({ length: rows }, (_, i) => start + ((i * 5) % 11));
      const out = await device().kernels.rope(up(x, [rows, heads * headDim]), up(positions, [rows], 'pos'), {
        headDim,
        theta,
      });
      // The angle pos·θ^(-2i/d) is rounded to f32 before cos/sin: at position ~1000 that is ~3e-5 rad.
      const atol = start >= 1000 ? 2e-4 : 1e-5;
      expectClose(await out.read(), ropeRef(x, positions, { rows, cols: heads * headDim, headDim }, theta), {
        rtol: 1e-5,
        atol,
      });
    }
  });

  it('causalSoftmax: prefill blocks, decode offsets, scaled, wide rows', async () => {
    for (const [blocks, queries, keys, offset, scale] of [
      [1, 1, 1, 0, 1],
      [3, 5, 5, 0, 0.35],
      [2, 1, 17, 16, 0.125],
      [4, 7, 40, 20, 1],
      [2, 3, 2000, 1500, 0.1],
    ] as const) {
      const rows = blocks * queries;
      const x = randomArray(rows * keys, keys + queries).map((v) => v * 6);
      const out = await device().kernels.causalSoftmax(up(x, [blocks, queries, keys]), {
        queries,
        offset,
        scale,
      });
      expect(out.shape).toEqual([blocks, queries, keys]);
      expectClose(await out.read(), causalSoftmaxRef(x, { rows, keys, queries, offset, scale }), REDUCTION);
    }
  });

  it('transpose01 splits heads and merges them back', async () => {
    for (const [a, b, c] of [
      [1, 1, 1],
      [5, 3, 8],
      [130, 6, 65],
      [2, 700, 3],
    ] as const) {
      const x = randomArray(a * b * c, a + b + c);
      const out = await device().kernels.transpose01(up(x, [a, b, c]));
      expect(out.shape).toEqual([b, a, c]);
      expectClose(await out.read(), transpose01Ref(x, a, b, c), EXACT);
      const back = await device().kernels.transpose01(out);
      expectClose(await back.read(), x, EXACT);
    }
  });

  it('slice and concat along every dim, f32 and u32', async () => {
    const shape = [5, 7, 3];
    const n = 5 * 7 * 3;
    const x = randomArray(n, 9);
    const ids = Uint32Array.from({ length: n }, (_, i) => i * 31 + 7);
    for (const data of [x, ids]) {
      const t = up(data, shape);
      for (let dim = 0; dim < 3; dim++) {
        const size = shape[dim]!;
        const pieces = [];
        for (const [start, length] of [
          [0, 1],
          [1, size - 2],
          [size - 1, 1],
        ] as const) {
          const piece = await device().kernels.slice(t, dim, start, length);
          expect(piece.shape).toEqual(shape.map((d, i) => (i === dim ? length : d)));
          const want = hostSlice(data, shape, dim, start, length);
          expectClose(await piece.read(), want, EXACT);
          pieces.push(piece);
        }
        const joined = await device().kernels.concat(pieces, dim);
        expect(joined.shape).toEqual(shape);
        expect(joined.dtype).toBe(t.dtype);
        expectClose(await joined.read(), data, EXACT);
      }
    }
    // Many rows: a fused QKV output [tokens, q + k + v] split on its last dim.
    const rows = 1500;
    const wide = randomArray(rows * 96, 4);
    const q = await device().kernels.slice(up(wide, [rows, 96]), 1, 0, 48);
    expectClose(await q.read(), hostSlice(wide, [rows, 96], 1, 0, 48), EXACT);
  });

  it('argmax per row, the lowest column on ties', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [3, 7],
      [65, 96],
      [2, 8193],
      [1000, 33],
    ] as const) {
      const x = randomArray(rows * cols, rows * cols).map((v) => Math.round(v * 20) / 4);
      const out = await device().kernels.argmax(up(x, [rows, cols]));
      const want = argmaxRef(x, rows, cols);
      expect(out.indices.dtype).toBe('u32');
      expect(Array.from(await out.indices.read())).toEqual(Array.from(want.indices));
      expectClose(await out.values.read(), want.values, EXACT);
    }
  });

  it('routerTopK: the k largest logits in order, ties to the lower expert, weights renormalised', async () => {
    // Hand case: row 0 has a tie between experts 1 and 3 (both 2.0); row 1 is all equal.
    const hand = await device().kernels.routerTopK(
      up(new Float32Array([0, 2, -1, 2, 1, 5, 5, 5, 5, 5]), [2, 5]),
      2,
    );
    expect(Array.from(await hand.indices.read())).toEqual([1, 3, 0, 1]);
    expectClose(await hand.weights.read(), new Float32Array([0.5, 0.5, 0.5, 0.5]), ELEMENTWISE);
    const wide = await device().kernels.routerTopK(up(new Float32Array([0, Math.log(3), 9, 1]), [1, 4]), 3);
    // exp(9), exp(ln 3), exp(1) renormalised.
    const z = Math.exp(9) + 3 + Math.E;
    expect(Array.from(await wide.indices.read())).toEqual([2, 1, 3]);
    expectClose(
      await wide.weights.read(),
      new Float32Array([Math.exp(9) / z, 3 / z, Math.E / z]),
      ELEMENTWISE,
    );
    for (const [rows, experts, k] of [
      [1, 1, 1],
      [7, 8, 2],
      [65, 3, 3],
      [1000, 8, 2],
      [70_000, 4, 1],
      [33, 64, 6],
    ] as const) {
      // Quarter steps make ties common.
      const x = randomArray(rows * experts, rows + experts).map((v) => Math.round(v * 8) / 4);
      const out = await device().kernels.routerTopK(up(x, [rows, experts]), k);
      const want = routerTopKRef(x, rows, experts, k);
      expect(out.indices.dtype).toBe('u32');
      expect(out.indices.shape).toEqual([rows, k]);
      expect(Array.from(await out.indices.read())).toEqual(Array.from(want.indices));
      expectClose(await out.weights.read(), want.weights, ELEMENTWISE);
    }
  });

  it('routerTopK refuses a k of 0 or above the number of experts', async () => {
    const x = up(new Float32Array(6), [2, 3]);
    await expect(device().kernels.routerTopK(x, 4)).rejects.toThrow(/k must be an integer from 1 to the 3/);
    await expect(device().kernels.routerTopK(x, 0)).rejects.toThrow(/k must be/);
  });

  it('writeCache appends tokens at a position, in place, leaving the rest', async () => {
    for (const [heads, capacity, headDim, tokens, position] of [
      [1, 1, 1, 1, 0],
      [2, 10, 8, 3, 4],
      [3, 70, 65, 1, 69],
      [4, 600, 16, 513, 0],
    ] as const) {
      const before = randomArray(heads * capacity * headDim, 1);
      const x = randomArray(tokens * heads * headDim, 2);
      const cache = up(before, [heads, capacity, headDim], 'cache');
      await device().kernels.writeCache(cache, up(x, [tokens, heads * headDim]), position);
      const want = new Float32Array(before);
      writeCacheRef(want, x, { heads, capacity, headDim, tokens }, position);
      expectClose(await cache.read(), want, EXACT);
    }
  });

  it('refuses operands that do not fit, with SHAPE errors naming the tensor', async () => {
    const k = device().kernels;
    await expect(
      k.batchedMatmul(up(new Float32Array(6), [1, 2, 3]), up(new Float32Array(8), [1, 4, 2], 'keys')),
    ).rejects.toThrow(/inner dimensions differ.*keys/);
    await expect(k.causalSoftmax(up(new Float32Array(6), [2, 3]), { queries: 2, offset: 2 })).rejects.toThrow(
      /needs 4 keys/,
    );
    await expect(
      k.writeCache(up(new Float32Array(16), [1, 4, 4], 'cache'), up(new Float32Array(8), [2, 4]), 3),
    ).rejects.toMatchObject({ code: 'MEMORY_BUDGET' });
    await expect(k.slice(up(new Float32Array(6), [2, 3]), 1, 2, 2)).rejects.toThrow(/past the 3 of dim 1/);
  });
});

function hostSlice<T extends Float32Array | Uint32Array>(
  data: T,
  shape: number[],
  dim: number,
  start: number,
  length: number,
): T {
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const size = shape[dim]!;
  const out = new (data.constructor as new (n: number) => T)(outer * length * inner);
  for (let o = 0; o < outer; o++) {
    out.set(
      data.subarray((o * size + start) * inner, (o * size + start + length) * inner),
      o * length * inner,
    );
  }
  return out;
}
