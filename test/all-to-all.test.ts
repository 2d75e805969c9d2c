import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { allToAll, CollectiveContext, planAllToAll } from '../src/collectives/index.js';
import { COPY_CHUNK_ELEMENTS } from '../src/collectives/streamed-copy.js';
import { isParallelError } from '../src/errors.js';
import type { Device } from '../src/runtime/device.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { type DType, elementCount, type Tensor } from '../src/runtime/tensor.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * allToAll against closed forms: element c of row i of source r holds value(r, i, c), so every row of every
 * destination says where it came from, and the expected outputs follow from the counts alone.
 */

const available = await webGpuAvailable();

/** Exact in f32 and u32 for the sizes used here (below 2^24). */
function value(r: number, row: number, c: number, rowElements: number): number {
  return r * 1_000_000 + row * rowElements + c;
}

function sourceData(r: number, rows: number, rest: readonly number[], dtype: DType) {
  const per = elementCount([1, ...rest]);
  const data = dtype === 'u32' ? new Uint32Array(rows * per) : new Float32Array(rows * per);
  for (let i = 0; i < rows; i++) for (let c = 0; c < per; c++) data[i * per + c] = value(r, i, c, per);
  return data;
}

/** What destination j receives: from each source in turn, the rows that source sends it. */
function expected(counts: readonly (readonly number[])[], j: number, rest: readonly number[]): number[] {
  const per = elementCount([1, ...rest]);
  const out: number[] = [];
  counts.forEach((row, r) => {
    const first = row.slice(0, j).reduce((a, b) => a + b, 0);
    for (let i = first; i < first + row[j]!; i++) for (let c = 0; c < per; c++) out.push(value(r, i, c, per));
  });
  return out;
}

describe('all-to-all plans (pure data)', () => {
  const dev = (id: number) => ({ id }) as unknown as Device;
  const [d0, d1, d2] = [dev(0), dev(1), dev(2)];

  it('[0,1] -> [1,2]: device 1 copies its own rows, every other pair with rows is one piece', () => {
    const plan = planAllToAll(
      [d0, d1],
      [
        [2, 0],
        [3, 1],
      ],
      [d1, d2],
      [4],
    );
    expect(plan.outputRows).toEqual([5, 1]);
    expect(plan.localCopies.map((c) => [c.srcRank, c.dstRank, c.segments])).toEqual([
      [1, 0, [{ srcOffset: 0, dstOffset: 8, count: 12 }]],
    ]);
    expect(plan.pieces.map((p) => [p.srcRank, p.runs])).toEqual([
      [0, [{ offset: 0, count: 8 }]],
      [1, [{ offset: 12, count: 4 }]],
    ]);
    expect(plan.pieceWrites).toEqual([
      [{ dstRank: 0, runs: [{ offset: 0, count: 8 }] }],
      [{ dstRank: 1, runs: [{ offset: 0, count: 4 }] }],
    ]);
  });

  it('pairs that move no elements (no rows, or rows of no elements) get no piece and no copy', () => {
    const counts = [
      [0, 0, 3],
      [0, 2, 0],
      [1, 0, 0],
    ];
    const rows = planAllToAll([d0, d1, d2], counts, [d0, d1, d2], [2]);
    expect(rows.pieces.map((p) => p.srcRank)).toEqual([0, 2]);
    expect(rows.localCopies.map((c) => c.srcRank)).toEqual([1]);
    const none = planAllToAll([d0, d1, d2], counts, [d2, d1, d0], [3, 0]);
    expect(none.outputRows).toEqual([1, 2, 3]);
    expect(none.pieces).toHaveLength(0);
    expect(none.localCopies).toHaveLength(0);
  });

  it("localThroughHost makes a destination's own rows a piece, read and written like the others", () => {
    const counts = [
      [2, 0],
      [3, 1],
    ];
    const plan = planAllToAll([d0, d1], counts, [d1, d2], [4], [true, false]);
    expect(plan.localCopies).toHaveLength(0);
    expect(plan.pieces.map((p) => [p.srcRank, p.runs])).toEqual([
      [0, [{ offset: 0, count: 8 }]],
      [1, [{ offset: 0, count: 12 }]],
      [1, [{ offset: 12, count: 4 }]],
    ]);
    expect(plan.pieceWrites[1]).toEqual([{ dstRank: 0, runs: [{ offset: 8, count: 12 }] }]);
  });
});

describe.skipIf(!available)(`allToAll on ${TEST_BACKEND}`, () => {
  let all: DeviceGroup;
  let ctx: CollectiveContext;
  beforeAll(async () => {
    all = await openTestGroup(4);
    ctx = new CollectiveContext();
  });
  afterAll(() => {
    ctx?.destroy();
    all?.destroy();
  });

  function upload(
    from: readonly number[],
    counts: readonly (readonly number[])[],
    rest: number[],
    dtype: DType,
  ) {
    return from.map((id, r) => {
      const rows = counts[r]!.reduce((a, b) => a + b, 0);
      return all.device(id).upload(sourceData(r, rows, rest, dtype), [rows, ...rest], `send${r}`);
    });
  }

  /** Element bytes of the pairs whose source and destination are two devices, and of those on one device. */
  function expectedBytes(from: readonly number[], to: readonly number[], counts: number[][], rest: number[]) {
    const per = elementCount([1, ...rest]) * 4;
    let host = 0;
    let local = 0;
    counts.forEach((row, r) => {
      row.forEach((n, j) => {
        if (from[r] === to[j]) local += n * per;
        else host += n * per;
      });
    });
    return { host, local };
  }

  // Uneven counts with empty sends, a source that sends nothing and destinations that receive nothing.
  const CASES: [string, number[], number[], number[][]][] = [
    [
      'same 2 devices',
      [0, 1],
      [0, 1],
      [
        [1, 3],
        [2, 0],
      ],
    ],
    [
      'same 3 devices, destination 1 receives nothing',
      [0, 1, 2],
      [0, 1, 2],
      [
        [2, 0, 1],
        [1, 0, 3],
        [0, 0, 2],
      ],
    ],
    [
      'same 3 devices, source 2 sends nothing',
      [0, 1, 2],
      [0, 1, 2],
      [
        [3, 1, 2],
        [0, 4, 1],
        [0, 0, 0],
      ],
    ],
    [
      'overlapping [0,1] -> [1,2]',
      [0, 1],
      [1, 2],
      [
        [2, 3],
        [4, 1],
      ],
    ],
    [
      'the same devices in another order',
      [0, 1, 2],
      [2, 0, 1],
      [
        [1, 2, 0],
        [0, 3, 3],
        [2, 1, 1],
      ],
    ],
    [
      'overlapping, 3 sources to 2 destinations',
      [1, 2, 3],
      [0, 1],
      [
        [2, 1],
        [0, 3],
        [5, 0],
      ],
    ],
    [
      'disjoint [0,1] -> [2,3]',
      [0, 1],
      [2, 3],
      [
        [3, 0],
        [1, 2],
      ],
    ],
    ['disjoint, 1 source to 3 destinations', [3], [0, 1, 2], [[2, 0, 5]]],
  ];

  for (const dtype of ['f32', 'u32'] as const) {
    it.each(CASES)(`${dtype}: %s`, async (_name, from, to, counts) => {
      for (const rest of [[3], [2, 2]]) {
        const inputs = upload(from, counts, rest, dtype);
        const { outputs, traffic, ms } = await allToAll(ctx, inputs, counts, all.select(to));
        expect(outputs).toHaveLength(to.length);
        for (const [j, out] of outputs.entries()) {
          const want = expected(counts, j, rest);
          expect(out.device).toBe(all.device(to[j]!));
          expect(out.dtype).toBe(dtype);
          expect(out.shape).toEqual([want.length / elementCount([1, ...rest]), ...rest]);
          expect([...(await out.read())]).toEqual(want);
        }
        // A device's own rows are copied on it or cross the host (see the test of `out` below): all of them
        // one way, so the split is the whole local part or none of it.
        const bytes = expectedBytes(from, to, counts, rest);
        const crossed = traffic.bytesLocal === 0 ? bytes.local : 0;
        expect(traffic).toEqual({
          bytesToHost: bytes.host + crossed,
          bytesFromHost: bytes.host + crossed,
          bytesLocal: bytes.local - crossed,
          keptShards: 0,
        });
        expect(ms).toBeGreaterThan(0);
        for (const t of [...inputs, ...outputs]) t.free();
      }
    });
  }

  it("a device's own rows cross the host into outputs Dawn writes directly, else are copied on it", async () => {
    const counts = [
      [2, 3],
      [4, 1],
    ];
    const rest = [5];
    const bytes = expectedBytes([0, 1], [0, 1], counts, rest);
    const group = all.select([0, 1]);
    const shapes = [6, 4].map((rows) => [rows, ...rest]);
    const fresh = shapes.map((shape, j) =>
      group.devices[j]!.upload(new Float32Array(elementCount(shape)), shape, `out${j}`),
    );
    const copiedInto = shapes.map((shape, j) => {
      const t = group.devices[j]!.upload(new Float32Array(elementCount(shape)), shape, `out${j}`);
      ctx.transport(t.device).copyWithin(fresh[j]!, t, [{ srcOffset: 0, dstOffset: 0, count: t.size }]);
      return t;
    });
    await group.sync();
    const inputs = upload([0, 1], counts, rest, 'f32');
    // Only WebGPU's write path makes a device copy cost later writes; host memory keeps the copy.
    const crossesOnFresh = TEST_BACKEND === 'webgpu';
    for (const [out, crosses] of [
      [fresh, crossesOnFresh],
      [copiedInto, false],
    ] as const) {
      const { traffic } = await allToAll(ctx, inputs, counts, group, { out });
      expect(traffic.bytesLocal).toBe(crosses ? 0 : bytes.local);
      expect(traffic.bytesToHost).toBe(bytes.host + (crosses ? bytes.local : 0));
      for (const [j, t] of out.entries()) expect([...(await t.read())]).toEqual(expected(counts, j, rest));
    }
    for (const t of [...inputs, ...fresh, ...copiedInto]) t.free();
  });

  it('reads each source once per chunk, and streams rows of many chunks exactly', async () => {
    const rest = [1024];
    // Source 0 holds more than one copy chunk: its two pieces are read as one stream, cut across them.
    const counts = [
      [1100, 1000],
      [700, 3],
    ];
    expect(2100 * 1024).toBeGreaterThan(COPY_CHUNK_ELEMENTS);
    const inputs = upload([0, 1], counts, rest, 'f32');
    const reads = [0, 1, 2].map((id) => vi.spyOn(ctx.transport(all.device(id)), 'read'));
    const { outputs } = await allToAll(ctx, inputs, counts, all.select([1, 2]));
    // Device 0 sends everything through the host (2 chunks); device 1's rows, for itself and device 2, fit
    // one chunk however its own rows go; device 2 holds no input.
    expect(reads.map((r) => r.mock.calls.length)).toEqual([2, 1, 0]);
    for (const r of reads) r.mockRestore();
    for (const [j, out] of outputs.entries()) {
      const want = expected(counts, j, rest);
      const got = await out.read();
      expect(got.length).toBe(want.length);
      let wrong = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) wrong++;
      expect(wrong).toBe(0);
    }
    for (const t of [...inputs, ...outputs]) t.free();
  });

  it('receives into the outputs it is given, call after call', async () => {
    const counts = [
      [1, 2, 0],
      [2, 0, 2],
      [1, 1, 1],
    ];
    const to = all.select([2, 1, 0]);
    const rows = [4, 3, 3];
    const out = to.devices.map((d, j) => d.upload(new Float32Array(rows[j]! * 3), [rows[j]!, 3], `recv${j}`));
    for (let call = 0; call < 3; call++) {
      const inputs = upload([0, 1, 2], counts, [3], 'f32');
      // Each call sends other values: the outputs must not keep the last call's.
      const scaled = await Promise.all(inputs.map((t) => t.device.kernels.scale(t, call + 1)));
      const { outputs } = await allToAll(ctx, scaled, counts, to, { out });
      expect(outputs).toEqual(out);
      for (const [j, t] of out.entries())
        expect([...(await t.read())]).toEqual(expected(counts, j, [3]).map((v) => v * (call + 1)));
      for (const t of [...inputs, ...scaled]) t.free();
    }
    for (const t of out) t.free();
  });

  it('raises typed errors for counts, shapes, dtypes and outputs that do not fit', async () => {
    const g = all.select([0, 1]);
    const a = all.device(0).upload(new Float32Array(6), [3, 2], 'a');
    const b = all.device(1).upload(new Float32Array(4), [2, 2], 'b');
    const c = all.device(1).upload(new Float32Array(6), [2, 3], 'c');
    const u = all.device(1).upload(new Uint32Array(4), [2, 2], 'u');
    const fails = async (
      inputs: Tensor[],
      counts: number[][],
      code: string,
      text: string,
      options?: Parameters<typeof allToAll>[4],
    ) => {
      await expect(allToAll(ctx, inputs, counts, g, options)).rejects.toSatisfy(
        (e) => isParallelError(e) && e.code === code && e.message.includes(text),
      );
    };
    await fails(
      [a, b],
      [
        [1, 1],
        [1, 1],
      ],
      'SPLIT',
      'add up to 2 rows',
    );
    await fails(
      [a, b],
      [
        [3, -1],
        [1, 1],
      ],
      'SPLIT',
      'non-negative',
    );
    await fails(
      [a, b],
      [
        [1.5, 1.5],
        [1, 1],
      ],
      'SPLIT',
      'non-negative integers',
    );
    await fails([a, b], [[1, 2]], 'SHAPE', 'one per input');
    await fails(
      [a, b],
      [
        [1, 2, 0],
        [1, 1],
      ],
      'SHAPE',
      'one per destination',
    );
    await fails(
      [a, c],
      [
        [1, 2],
        [1, 1],
      ],
      'SHAPE',
      'rows of another shape',
    );
    await fails(
      [a, u],
      [
        [1, 2],
        [1, 1],
      ],
      'DTYPE',
      'is u32',
    );
    await fails([], [], 'INVALID_ARGUMENT', 'at least one input');
    const counts = [
      [1, 2],
      [1, 1],
    ];
    const outs = [all.device(0).empty([2, 2], 'f32', 'o0'), all.device(1).empty([3, 2], 'f32', 'o1')];
    const short = all.device(1).empty([2, 2], 'f32', 'short');
    await fails([a, b], counts, 'SHAPE', 'receives [3, 2]', { out: [outs[0]!, short] });
    await fails([a, b], counts, 'GROUP', 'lives on', { out: [outs[1]!, outs[0]!] });
    await fails([a, b], counts, 'GROUP', '1 outputs for 2 destinations', { out: [outs[0]!] });
    const onOther = all.device(2).empty([3, 2], 'f32', 'o1');
    await fails([a, b], counts, 'GROUP', 'lives on', { out: [outs[0]!, onOther] });
    for (const t of [a, b, c, u, ...outs, short, onOther]) t.free();
    await expect(allToAll(ctx, [a, b], counts, g)).rejects.toSatisfy((e) => isParallelError(e, 'DESTROYED'));
  });
});
