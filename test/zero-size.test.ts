import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  allGather,
  allReduce,
  broadcast,
  CollectiveContext,
  distributedFromShards,
  gatherToHost,
  Partial,
  planTransfer,
  Replicate,
  reduceScatter,
  Shard,
  scatter,
  sendRecv,
  shardFromHost,
} from '../src/collectives/index.js';
import { isParallelError } from '../src/errors.js';
import { KernelCache } from '../src/kernels/gpujs/kernel-cache.js';
import type { Kernels } from '../src/kernels/kernels.js';
import { CpuDevice } from '../src/runtime/cpu-device.js';
import type { Device } from '../src/runtime/device.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { elementCount, type HostArray, type Tensor } from '../src/runtime/tensor.js';
import { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { expectClose, randomArray } from './support/compare.js';
import { liveBytes, openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * Tensors with a dim of zero: the runtime holds them, every kernel gives the reference's (empty, or zero)
 * result for them, and collectives move shards of no rows without issuing a read, write or copy of nothing.
 */

const available = await webGpuAvailable();
const CLOSE = { rtol: 1e-5, atol: 1e-6 };

describe('zero-size layouts (pure data)', () => {
  const dev = (id: number) => ({ id }) as unknown as Device;
  const d = [dev(0), dev(1), dev(2)];

  it('a shard of no rows is read by no piece and written by none', () => {
    const plan = planTransfer(
      [3, 4],
      { devices: d, placement: Shard(0, [2, 0, 1]) },
      { devices: d, placement: Replicate() },
      true,
    );
    expect(plan.pieces.map((p) => p.srcRank).sort()).toEqual([0, 2]);
    expect(plan.pieces.every((p) => p.elements > 0 && p.runs.every((r) => r.count > 0))).toBe(true);
    const toEmpty = planTransfer(
      [3, 4],
      { devices: d, placement: Replicate() },
      { devices: d, placement: Shard(0, [0, 3, 0]) },
      true,
    );
    // Device 1 keeps the whole tensor as it is; the others need nothing at all.
    expect(toEmpty.pieces).toHaveLength(0);
    expect(toEmpty.localCopies).toHaveLength(0);
    expect(toEmpty.alias).toEqual([null, 1, null]);
  });

  it('refuses negative, fractional and rank-0 shapes, and negative shard sizes', () => {
    const cpu = new CpuDevice();
    for (const shape of [[-1, 2], [1.5], []]) {
      expect(() => cpu.empty(shape, 'f32', 'bad')).toThrow(expect.objectContaining({ code: 'SHAPE' }));
    }
    expect(() => shardFromHost(DeviceGroup.of([cpu]), new Float32Array(0), [0], Shard(0, [-1]))).toThrow(
      expect.objectContaining({ code: 'SPLIT' }),
    );
  });
});

describe.skipIf(!available)(`zero-size tensors on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  const cpu = new CpuDevice(9);
  beforeAll(async () => {
    group = await openTestGroup(3);
  });
  afterAll(() => group?.destroy());
  const device = () => group.devices[0]!;

  it('upload, read, empty, reshape views and free of [0, 5], with the ledger back where it was', async () => {
    const before = liveBytes(device());
    for (const data of [new Float32Array(0), new Uint32Array(0)]) {
      const t = device().upload(data, [0, 5], 'none');
      expect(t.shape).toEqual([0, 5]);
      expect(t.size).toBe(0);
      expect(t.byteLength).toBe(0);
      const back = await t.read();
      expect(back).toBeInstanceOf(data.constructor);
      expect(back.length).toBe(0);
      const view = t.reshape([5, 0, 3]);
      expect(view.shape).toEqual([5, 0, 3]);
      expect((await view.read()).length).toBe(0);
      expect(() => t.reshape([1])).toThrow(expect.objectContaining({ code: 'SHAPE' }));
      view.free();
      t.free();
      expect(() => view.assertLive('x')).toThrow(expect.objectContaining({ code: 'DESTROYED' }));
    }
    const e = device().empty([3, 0], 'f32', 'empty');
    expect((await e.read()).length).toBe(0);
    e.free();
    expect(liveBytes(device()) - before).toBe(0);
    expect(() => device().upload(new Float32Array(1), [0, 5], 'x')).toThrow(
      expect.objectContaining({ code: 'SHAPE' }),
    );
  });

  /** Runs the same kernel call on the test device and on the CPU reference and compares every output. */
  async function same(
    name: string,
    inputs: readonly (readonly [HostArray, number[]])[],
    call: (k: Kernels, t: Tensor[]) => Promise<Tensor | Tensor[]>,
  ): Promise<Tensor[]> {
    const results: HostArray[][] = [];
    const shapes: number[][][] = [];
    let kept: Tensor[] = [];
    for (const d of [device(), cpu]) {
      const tensors = inputs.map(([data, shape], i) => d.upload(data, shape, `${name}.in${i}`));
      // WebGPU makes a bind group for every dispatch, and only there; gpu.js runs every kernel through its
      // device's KernelCache, which runs nothing for an output of no cells.
      const binds = d instanceof GpuDevice ? vi.spyOn(d.gpu, 'createBindGroup') : undefined;
      binds?.mockClear();
      const runs = vi.spyOn(KernelCache.prototype, 'run');
      runs.mockClear();
      const out = await call(d.kernels, tensors);
      const outs = Array.isArray(out) ? out : [out];
      if (outs.every((t) => t.size === 0)) {
        if (binds) expect(binds, `${name} dispatched`).not.toHaveBeenCalled();
        const ran = runs.mock.calls.filter(([spec]) => spec.output.every((n) => n > 0));
        expect(ran, `${name} ran a gpu.js kernel`).toEqual([]);
      }
      binds?.mockRestore();
      runs.mockRestore();
      shapes.push(outs.map((t) => [...t.shape]));
      results.push(await Promise.all(outs.map((t) => t.read())));
      for (const t of tensors) t.free();
      if (d === cpu) for (const t of outs) t.free();
      else kept = outs;
    }
    expect(shapes[0], name).toEqual(shapes[1]);
    results[0]!.forEach((got, i) => {
      expectClose(got, results[1]![i]!, CLOSE);
    });
    return kept;
  }

  const f32 = (n: number, seed = n) => randomArray(n, seed + 1);
  const u32 = (values: number[]) => Uint32Array.from(values);
  /** [values, shape] of random f32 values. */
  const x = (...shape: number[]): readonly [HostArray, number[]] => [f32(elementCount(shape)), shape];

  it('matmul: empty products, and K = 0 giving zeros or act(bias) on every row', async () => {
    for (const [m, k, n] of [
      [0, 3, 4],
      [2, 3, 0],
      [0, 0, 0],
      [3, 0, 5],
    ] as const) {
      const [out] = await same(`matmul ${m}x${k}x${n}`, [x(m, k), x(k, n)], (K, [a, b]) => K.matmul(a!, b!));
      expect(out!.shape).toEqual([m, n]);
      if (k === 0) expect([...(await out!.read())].every((v) => v === 0)).toBe(true);
    }
    for (const activation of ['none', 'relu', 'gelu'] as const) {
      const [out] = await same(`matmul K=0 bias ${activation}`, [x(3, 0), x(0, 5), x(5)], (K, [a, b, bias]) =>
        K.matmul(a!, b!, { bias, activation }),
      );
      expect(out!.shape).toEqual([3, 5]);
    }
  });

  it('embedding: no tokens, no hidden columns, a table of no rows (zeros)', async () => {
    await same('embedding T=0', [x(7, 4), [u32([]), [0]]], (K, [t, i]) => K.embedding(t!, i!));
    await same('embedding H=0', [x(7, 0), [u32([1, 2]), [2]]], (K, [t, i]) => K.embedding(t!, i!));
    const [zeros] = await same('embedding V=0', [x(0, 4), [u32([0, 3, 1]), [3]]], (K, [t, i]) =>
      K.embedding(t!, i!, { rowOffset: 2 }),
    );
    expect([...(await zeros!.read())]).toEqual(new Array(12).fill(0));
  });

  it('elementwise kernels, sums and row broadcasts over empty tensors', async () => {
    for (const [name, a, b] of [
      ['same shape, no rows', x(0, 5), x(0, 5)],
      ['row broadcast, no rows', x(0, 5), x(5)],
      ['no columns', x(3, 0), x(3, 0)],
      ['row broadcast, no columns', x(3, 0), x(0)],
    ] as const) {
      await same(`add ${name}`, [a, b], (K, [p, q]) => K.add(p!, q!));
      await same(`mul ${name}`, [a, b], (K, [p, q]) => K.mul(p!, q!));
    }
    await same('scale', [x(0, 5)], (K, [a]) => K.scale(a!, 3));
    await same('silu', [x(4, 0, 2)], (K, [a]) => K.silu(a!));
    await same('swiglu', [x(0, 3), x(0, 3)], (K, [a, b]) => K.swiglu(a!, b!));
    await same('sum of 3', [x(0, 4), x(0, 4), x(0, 4)], (K, t) => K.sum(t));
    await same('sum of 5', [x(2, 0), x(2, 0), x(2, 0), x(2, 0), x(2, 0)], (K, t) => K.sum(t));
    await same('sum of 1', [x(0)], (K, t) => K.sum(t));
  });

  it('meanRows: groups of a size over no rows are none; the mean of no rows is refused', async () => {
    const [none] = await same('meanRows [0,5] by 3', [x(0, 5)], (K, [a]) => K.meanRows(a!, 3));
    expect(none!.shape).toEqual([0, 5]);
    await same('meanRows [6,0] by 2', [x(6, 0)], (K, [a]) => K.meanRows(a!, 2));
    const t = device().upload(new Float32Array(0), [0, 5], 'x');
    await expect(device().kernels.meanRows(t)).rejects.toSatisfy((e) => isParallelError(e, 'SHAPE'));
    t.free();
  });

  it('row kernels over no rows and over rows of no columns', async () => {
    for (const [rows, cols] of [
      [0, 5],
      [3, 0],
    ] as const) {
      await same(`layerNorm ${rows}x${cols}`, [x(rows, cols), x(cols), x(cols)], (K, [a, g, b]) =>
        K.layerNorm(a!, g!, b!),
      );
      await same(`rmsNorm ${rows}x${cols}`, [x(rows, cols), x(cols)], (K, [a, w]) => K.rmsNorm(a!, w!, 1e-5));
      await same(`softmax ${rows}x${cols}`, [x(rows, cols)], (K, [a]) => K.softmax(a!));
    }
    await same('causalSoftmax, no rows', [x(0, 5)], (K, [a]) => K.causalSoftmax(a!, { queries: 2 }));
    await same('rope, no tokens', [x(0, 8), [u32([]), [0]]], (K, [a, p]) =>
      K.rope(a!, p!, { headDim: 4, theta: 10_000 }),
    );
  });

  it('batchedMatmul: no batches, rows, columns; K = 0 gives zeros; a cache of no rows in use', async () => {
    for (const [batch, m, k, n] of [
      [0, 2, 3, 4],
      [2, 0, 3, 4],
      [2, 2, 3, 0],
      [2, 5, 0, 4],
    ] as const) {
      await same(`batchedMatmul ${batch}x${m}x${k}x${n}`, [x(batch, m, k), x(batch, k, n)], (K, [a, b]) =>
        K.batchedMatmul(a!, b!, { scale: 0.5 }),
      );
      await same(`batchedMatmulᵀ ${batch}x${m}x${k}x${n}`, [x(batch, m, k), x(batch, n, k)], (K, [a, b]) =>
        K.batchedMatmul(a!, b!, { transposeB: true }),
      );
    }
    const [scores] = await same('batchedMatmulᵀ bRows=0', [x(2, 3, 4), x(2, 6, 4)], (K, [a, b]) =>
      K.batchedMatmul(a!, b!, { transposeB: true, bRows: 0 }),
    );
    expect(scores!.shape).toEqual([2, 3, 0]);
    const [values] = await same('batchedMatmul bRows=0 (K = 0)', [x(2, 3, 0), x(2, 6, 4)], (K, [a, b]) =>
      K.batchedMatmul(a!, b!, { bRows: 0 }),
    );
    expect([...(await values!.read())]).toEqual(new Array(24).fill(0));
  });

  it('transpose01, slice and concat with empty parts', async () => {
    for (const shape of [
      [0, 2, 3],
      [2, 0, 3],
      [2, 3, 0],
    ]) {
      await same(`transpose01 ${shape}`, [x(...shape)], (K, [a]) => K.transpose01(a!));
    }
    await same('slice of length 0', [x(4, 3)], (K, [a]) => K.slice(a!, 0, 1, 0));
    await same('slice of no rows', [x(0, 3)], (K, [a]) => K.slice(a!, 1, 1, 2));
    const [joined] = await same('concat with an empty input', [x(2, 3), x(0, 3), x(1, 3)], (K, t) =>
      K.concat(t, 0),
    );
    expect(joined!.shape).toEqual([3, 3]);
    await same('concat of empty columns', [x(2, 0), x(2, 2), x(2, 0)], (K, t) => K.concat(t, 1));
    await same('concat of empties', [x(0, 3), x(0, 3)], (K, t) => K.concat(t, 0));
    await same(
      'concat u32',
      [
        [u32([]), [0, 2]],
        [u32([5, 6]), [1, 2]],
      ],
      (K, t) => K.concat(t, 0),
    );
  });

  it('argmax and routerTopK over no rows; argmax over rows of no columns is refused', async () => {
    const [indices, values] = await same('argmax no rows', [x(0, 5)], async (K, [a]) => {
      const r = await K.argmax(a!);
      return [r.indices, r.values];
    });
    expect(indices!.shape).toEqual([0]);
    expect(indices!.dtype).toBe('u32');
    expect(values!.shape).toEqual([0]);
    const [experts, weights] = await same('routerTopK no rows', [x(0, 4)], async (K, [a]) => {
      const r = await K.routerTopK(a!, 2);
      return [r.indices, r.weights];
    });
    expect(experts!.shape).toEqual([0, 2]);
    expect(weights!.shape).toEqual([0, 2]);
    const t = device().upload(new Float32Array(0), [3, 0], 'x');
    await expect(device().kernels.argmax(t)).rejects.toSatisfy((e) => isParallelError(e, 'SHAPE'));
    t.free();
  });

  it('writeCache of no tokens leaves the cache as it was', async () => {
    const data = f32(2 * 4 * 3);
    const cache = device().upload(data, [2, 4, 3], 'cache');
    const none = device().upload(new Float32Array(0), [0, 6], 'x');
    await device().kernels.writeCache(cache, none, 4);
    expect(await cache.read()).toEqual(data);
    cache.free();
    none.free();
  });

  describe('collectives with shards of no rows', () => {
    let ctx: CollectiveContext;
    beforeAll(() => {
      ctx = new CollectiveContext();
    });
    afterAll(() => ctx?.destroy());

    function queueWrites(d: GpuDevice, empty: string[]) {
      const queue = d.gpu.queue;
      const write = queue.writeBuffer.bind(queue);
      return vi
        .spyOn(queue, 'writeBuffer')
        .mockImplementation((...args: Parameters<GPUQueue['writeBuffer']>) => {
          const [, , data, , size] = args;
          if ((size ?? (data as ArrayBufferLike).byteLength) === 0) empty.push(`${d.name} queue.writeBuffer`);
          write(...args);
        });
    }

    /**
     * Records every read, write and copy handed to the devices' transports, and which of them were of
     * nothing (checked at the call: a mapped source is unmapped, and so emptied, right after).
     */
    function watchTransports(devices: readonly Device[]) {
      const empty: string[] = [];
      let calls = 0;
      const spies = devices.flatMap((d) => {
        const t = ctx.transport(d);
        const read = t.read.bind(t);
        const write = t.write.bind(t);
        const copy = t.copyWithin.bind(t);
        return [
          vi.spyOn(t, 'read').mockImplementation((tensor, runs) => {
            calls++;
            if (runs.length === 0 || runs.some((r) => r.count === 0)) empty.push(`${d.name} read`);
            return read(tensor, runs);
          }),
          vi.spyOn(t, 'write').mockImplementation((tensor, data, at) => {
            calls++;
            if (data.length === 0) empty.push(`${d.name} write`);
            write(tensor, data, at);
          }),
          vi.spyOn(t, 'copyWithin').mockImplementation((src, dst, segments) => {
            calls++;
            if (segments.length === 0 || segments.some((s) => s.count === 0)) empty.push(`${d.name} copy`);
            copy(src, dst, segments);
          }),
          // Below the transport, what reaches Dawn's queue.
          ...(d instanceof GpuDevice ? [queueWrites(d, empty)] : []),
        ];
      });
      return {
        calls: () => calls,
        check: () => {
          for (const spy of spies) spy.mockRestore();
          expect(empty).toEqual([]);
        },
      };
    }

    it.each([
      [
        [2, 0, 1],
        [0, 1, 2],
      ],
      [
        [1, 0, 0],
        [0, 1, 2],
      ],
      [
        [2, 0, 1],
        [1, 2],
      ],
      [
        [0, 0, 3],
        [2, 0],
      ],
    ])('allGather of Shard(0, %j) to %j', async (sizes, to) => {
      const rows = sizes.reduce((a, b) => a + b, 0);
      const whole = Float32Array.from({ length: rows * 4 }, (_, i) => i + 1);
      const input = shardFromHost(group, whole, [rows, 4], Shard(0, sizes));
      expect(input.shards.map((s) => s.shape[0])).toEqual(sizes);
      const watch = watchTransports(group.devices);
      const { output, traffic } = await allGather(ctx, input, group.select(to));
      for (const shard of output.shards) expect(await shard.read()).toEqual(whole);
      expect(watch.calls()).toBeGreaterThan(0);
      watch.check();
      expect(traffic.bytesToHost).toBeLessThanOrEqual(whole.byteLength);
      input.free(output.shards);
      output.free();
    });

    it('scatter, reduceScatter and redistribute onto shards of no rows, and back', async () => {
      const whole = randomArray(3 * 5, 4);
      const root = group.devices[1]!.upload(whole, [3, 5], 'root');
      const watch = watchTransports(group.devices);
      const s = await scatter(ctx, root, group, 0, [0, 3, 0]);
      expect(s.output.shards.map((t) => t.shape)).toEqual([
        [0, 5],
        [3, 5],
        [0, 5],
      ]);
      expect(await gatherToHost(s.output)).toEqual(whole);
      const parts = group.devices.map((_, r) => new Float32Array(15).fill(r + 1));
      const partial = distributedFromShards(group, Partial(), [3, 5], parts);
      for (const reduceOn of ['host', 'device'] as const) {
        const r = await reduceScatter(ctx, partial, 0, group, [0, 1, 2], { reduceOn });
        expect(r.output.shards.map((t) => t.shape[0])).toEqual([0, 1, 2]);
        expect([...(await gatherToHost(r.output))]).toEqual(new Array(15).fill(6));
        r.output.free();
      }
      const gathered = await allGather(ctx, s.output, group.select([2, 0]));
      for (const shard of gathered.output.shards) expect(await shard.read()).toEqual(whole);
      watch.check();
      for (const t of [s.output, partial, gathered.output]) t.free();
      root.free();
    });

    it('allReduce, broadcast and sendRecv of tensors with no elements move nothing', async () => {
      const watch = watchTransports(group.devices);
      const partial = distributedFromShards(
        group,
        Partial(),
        [0, 5],
        group.devices.map(() => new Float32Array(0)),
      );
      for (const reduceOn of ['host', 'device'] as const) {
        const { output, traffic } = await allReduce(ctx, partial, group.select([2, 1]), { reduceOn });
        expect(output.shards.map((t) => t.shape)).toEqual([
          [0, 5],
          [0, 5],
        ]);
        expect(traffic.bytesToHost + traffic.bytesFromHost).toBe(0);
        output.free();
      }
      const root = device().upload(new Float32Array(0), [4, 0], 'root');
      const b = await broadcast(ctx, root, group);
      expect(b.output.shards.map((t) => t.shape)).toEqual([
        [4, 0],
        [4, 0],
        [4, 0],
      ]);
      const sent = await sendRecv(ctx, root, group.devices[2]!);
      expect(sent.output.shape).toEqual([4, 0]);
      expect(sent.output.device).toBe(group.devices[2]);
      expect(watch.calls()).toBe(0);
      watch.check();
      b.output.free([root]);
      sent.output.free();
      partial.free();
      root.free();
    });
  });
});
