import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addRef,
  embeddingRef,
  layerNormRef,
  meanRowsRef,
  scaleRef,
  softmaxRef,
  sumRef,
} from '../src/kernels/reference/reference-ops.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { expectClose, randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();
const EXACT = { rtol: 0, atol: 0 };
const ELEMENTWISE = { rtol: 1e-6, atol: 1e-7 };
const REDUCTION = { rtol: 1e-5, atol: 1e-6 };

describe.skipIf(!available)(`kernels on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(1);
  });
  afterAll(() => group?.destroy());
  const device = () => group.devices[0]!;

  it('embedding gathers rows, and zeros for ids outside the table (vocab-parallel)', async () => {
    for (const [vocab, hidden, tokens, offset] of [
      [1, 1, 1, 0],
      [50, 33, 7, 0],
      [97, 129, 300, 40],
      [1000, 64, 1100, 0],
    ] as const) {
      const table = randomArray(vocab * hidden, vocab);
      const ids = Uint32Array.from({ length: tokens }, (_, i) => (i * 7919) % (vocab + offset + 13));
      const t = device().upload(table, [vocab, hidden], 'table');
      const i = device().upload(ids, [tokens], 'ids');
      const out = await device().kernels.embedding(t, i, { rowOffset: offset });
      expect(out.shape).toEqual([tokens, hidden]);
      expectClose(await out.read(), embeddingRef(table, hidden, vocab, ids, offset), EXACT);
    }
  });

  it('add (same shape and row broadcast) and scale', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [3, 7],
      [513, 300],
      [1, 70_001],
    ] as const) {
      const a = randomArray(rows * cols, 1);
      const b = randomArray(rows * cols, 2);
      const row = randomArray(cols, 3);
      const ta = device().upload(a, [rows, cols], 'a');
      const tb = device().upload(b, [rows, cols], 'b');
      const tr = device().upload(row, [cols], 'row');
      expectClose(await (await device().kernels.add(ta, tb)).read(), addRef(a, b), ELEMENTWISE);
      expectClose(await (await device().kernels.add(ta, tr)).read(), addRef(a, row), ELEMENTWISE);
      expectClose(await (await device().kernels.scale(ta, -2.5)).read(), scaleRef(a, -2.5), ELEMENTWISE);
    }
  });

  it('sums 1 to 7 tensors, including sizes past one grid dimension', async () => {
    for (const count of [1, 2, 3, 4, 5, 7]) {
      const n = count === 5 ? 65_535 * 256 + 3 : 1001;
      const inputs = Array.from({ length: count }, (_, i) => randomArray(n, 10 + i));
      const tensors = inputs.map((x, i) => device().upload(x, [n], `in${i}`));
      const out = await device().kernels.sum(tensors);
      expectClose(await out.read(), sumRef(inputs), REDUCTION);
      for (const t of [...tensors, out]) t.free();
    }
  });

  it('meanRows over all rows and over groups of rows', async () => {
    for (const [groups, per, cols] of [
      [1, 1, 1],
      [1, 17, 5],
      [4, 9, 130],
      [3, 128, 257],
    ] as const) {
      const x = randomArray(groups * per * cols, per);
      const t = device().upload(x, [groups * per, cols], 'x');
      const out = await device().kernels.meanRows(t, per);
      expect(out.shape).toEqual([groups, cols]);
      expectClose(await out.read(), meanRowsRef(x, groups, per, cols), REDUCTION);
    }
  });

  it('layerNorm and softmax per row, for narrow and wide rows', async () => {
    for (const [rows, cols] of [
      [1, 1],
      [1, 3],
      [5, 63],
      [130, 257],
      [2, 3000],
    ] as const) {
      const x = randomArray(rows * cols, cols).map((v) => v * 4 + 1);
      const gamma = randomArray(cols, 5);
      const beta = randomArray(cols, 6);
      const tx = device().upload(x, [rows, cols], 'x');
      const tg = device().upload(gamma, [cols], 'gamma');
      const tb = device().upload(beta, [cols], 'beta');
      expectClose(
        await (await device().kernels.layerNorm(tx, tg, tb)).read(),
        layerNormRef(x, rows, cols, gamma, beta, 1e-5),
        {
          rtol: 1e-4,
          atol: 1e-4,
        },
      );
      expectClose(await (await device().kernels.softmax(tx)).read(), softmaxRef(x, rows, cols), REDUCTION);
    }
  });
});
