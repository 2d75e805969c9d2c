import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  chunksOf,
  DIRECT_CHUNK_ELEMENTS,
  FIRST_DIRECT_CHUNK_ELEMENTS,
  READ_AHEAD,
} from '../src/collectives/chunk-stream.js';
import { sumInto } from '../src/collectives/host-sum.js';
import {
  allGather,
  allReduce,
  broadcast,
  CollectiveContext,
  DistributedTensor,
  distributedFromShards,
  gatherToHost,
  hostBytes,
  Partial,
  planTransfer,
  Replicate,
  redistribute,
  reduce,
  reduceScatter,
  Shard,
  scatter,
  sendRecv,
  shardFromHost,
  WebGpuTransport,
} from '../src/collectives/index.js';
import { COPY_CHUNK_ELEMENTS } from '../src/collectives/streamed-copy.js';
import { createWasmSum, SUM_BLOCK_ELEMENTS } from '../src/collectives/wasm-sum.js';
import { isParallelError } from '../src/errors.js';
import type { Device } from '../src/runtime/device.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { elementCount } from '../src/runtime/tensor.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import { sizeClass } from '../src/runtime/webgpu/staging-pool.js';
import { expectClose, randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();

function filled(n: number, value: number): Float32Array {
  return new Float32Array(n).fill(value);
}

function ids(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

describe('transfer plans (pure data)', () => {
  // Plans only compare devices by identity: plain objects stand in for them.
  const dev = (id: number) => ({ id }) as unknown as Device;
  const [d0, d1, d2] = [dev(0), dev(1), dev(2)];
  const d = [d0, d1, d2];

  it('Shard(0) on [0,1] -> Shard(0) on [0,2] keeps device 0 shard and reads only device 1 shard', () => {
    const plan = planTransfer(
      [4, 6],
      { devices: [d0, d1], placement: Shard(0) },
      { devices: [d0, d2], placement: Shard(0) },
      true,
    );
    expect(plan.alias).toEqual([0, null]);
    expect(plan.pieces).toHaveLength(1);
    expect(plan.pieces[0]).toMatchObject({ srcRank: 1, elements: 12, runs: [{ offset: 0, count: 12 }] });
  });

  it('Shard(1) column blocks are read as one run from the shard and written as strided rows', () => {
    const plan = planTransfer(
      [3, 4],
      { devices: [d0, d1], placement: Shard(1) },
      { devices: [d2], placement: Replicate() },
      true,
    );
    expect(plan.pieces.map((p) => p.runs)).toEqual([[{ offset: 0, count: 6 }], [{ offset: 0, count: 6 }]]);
    expect(plan.pieceWrites[1]![0]!.runs).toEqual([
      { offset: 2, count: 2 },
      { offset: 6, count: 2 },
      { offset: 10, count: 2 },
    ]);
  });

  it('writes the part a destination holds itself from the host only where that piece is read anyway', () => {
    const gather = (localThroughHost?: boolean[]) =>
      planTransfer(
        [6],
        { devices: [d0, d1], placement: Shard(0) },
        { devices: [d0, d1, d2], placement: Replicate() },
        true,
        { keepInPlace: false, localThroughHost },
      );
    expect(gather().localCopies.map((c) => [c.srcRank, c.dstRank])).toEqual([
      [0, 0],
      [1, 1],
    ]);
    // Device 0's shard is read for devices 1 and 2 anyway: device 0 gets its own part from that read too.
    const direct = gather([true, false, true]);
    expect(direct.localCopies.map((c) => [c.srcRank, c.dstRank])).toEqual([[1, 1]]);
    expect(direct.pieces).toHaveLength(2);
    expect(
      direct.pieceWrites[direct.pieces.findIndex((p) => p.srcRank === 0)]!.map((w) => w.dstRank),
    ).toEqual([1, 2, 0]);
    // A part no other destination needs is not read just for that: it stays a copy on the device.
    const moved = planTransfer(
      [4],
      { devices: [d0, d1], placement: Shard(0, [1, 3]) },
      { devices: [d0, d1], placement: Shard(0, [3, 1]) },
      true,
      { keepInPlace: false, localThroughHost: [true, true] },
    );
    expect(moved.localCopies.map((c) => [c.srcRank, c.dstRank, c.elements])).toEqual([
      [0, 0, 1],
      [1, 1, 1],
    ]);
  });

  it('an AllReduce on the host reads each partial once and sums once for all destinations', () => {
    const plan = planTransfer(
      [8],
      { devices: d, placement: Partial() },
      { devices: d, placement: Replicate() },
      true,
    );
    expect(plan.pieces).toHaveLength(3);
    expect(plan.hostReductions).toHaveLength(1);
    expect(plan.hostReductions[0]!.writes).toHaveLength(3);
  });
});

describe('host sum kernels', () => {
  it('the WebAssembly SIMD sum matches the JS sum for 1-6 inputs, ragged lengths and many blocks', () => {
    const simd = createWasmSum();
    expect(simd).not.toBeNull();
    for (const [k, n] of [
      [1, 5],
      [2, 7],
      [2, 2 * SUM_BLOCK_ELEMENTS + 3],
      [3, 3 * SUM_BLOCK_ELEMENTS + 5],
      [5, SUM_BLOCK_ELEMENTS + 6],
      [3, 13],
      [3, 4096],
      [4, 9],
      [5, 1027],
      [6, 33],
    ] as const) {
      const inputs = Array.from({ length: k }, (_, j) => randomArray(n, 17 * j + n));
      const want = new Float32Array(n);
      sumInto(want, inputs);
      const got = Array.from(simd!.sum(inputs, n));
      for (const [i, v] of got.entries()) expect(v).toBeCloseTo(want[i]!, 5);
      // A shorter call after a longer one reuses the same memory without stale tails.
      expect(simd!.sum(inputs, 1).length).toBe(1);
    }
  });
});

describe.skipIf(!available)(`collectives on ${TEST_BACKEND}`, () => {
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

  /** Each device of `src` holds its rank + 1 everywhere. */
  function rankValued(
    src: DeviceGroup,
    placement: ReturnType<typeof Shard> | ReturnType<typeof Partial>,
    shape: number[],
  ) {
    const sizes = src.devices.map((_, r) => {
      const local = [...shape];
      if (placement.kind === 'shard')
        local[placement.dim] = (placement.sizes ?? shape.map(() => shape[placement.dim]! / src.size))[r]!;
      return filled(elementCount(local), r + 1);
    });
    return distributedFromShards(src, placement, shape, sizes);
  }

  // Source and destination groups: same, overlapping, disjoint.
  const PAIRS: [number[], number[]][] = [
    [[0], [0]],
    [
      [0, 1],
      [0, 1],
    ],
    [
      [0, 1, 2],
      [0, 1, 2],
    ],
    [
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ],
    [
      [0, 1],
      [1, 2],
    ],
    [[1, 2], [2]],
    [
      [0, 1],
      [2, 3],
    ],
    [[3], [0, 1, 2]],
    [
      [2, 0, 3],
      [3, 1],
    ],
  ];

  it.each(PAIRS)('allReduce from %j to %j sums every rank', async (from, to) => {
    const n = from.length;
    const input = rankValued(all.select(from), Partial(), [5, 7]);
    const { output, traffic } = await allReduce(ctx, input, all.select(to));
    expect(output.placement.kind).toBe('replicate');
    for (const shard of output.shards)
      expect([...(await shard.read())]).toEqual(new Array(35).fill((n * (n + 1)) / 2));
    expect(traffic.bytesToHost).toBe(n === 1 ? (to[0] === from[0] ? 0 : 140) : n * 140);
    input.free(output.shards);
    output.free();
  });

  it.each(PAIRS)('allGather (Shard 0, uneven) from %j to %j', async (from, to) => {
    const n = from.length;
    const sizes = ids(n).map((r) => r + 1);
    const rows = sizes.reduce((a, b) => a + b, 0);
    const input = rankValued(all.select(from), Shard(0, sizes), [rows, 3]);
    const { output, traffic } = await allGather(ctx, input, all.select(to));
    const want = sizes.flatMap((s, r) => new Array(s * 3).fill(r + 1));
    for (const shard of output.shards) expect([...(await shard.read())]).toEqual(want);
    // Each source shard crosses the host once at most, however many destinations need it.
    expect(traffic.bytesToHost).toBeLessThanOrEqual(rows * 3 * 4);
    input.free(output.shards);
    output.free();
  });

  it.each(PAIRS)('reduceScatter (dim 1) from %j to %j', async (from, to) => {
    const n = from.length;
    const cols = 2 * to.length;
    const input = rankValued(all.select(from), Partial(), [3, cols]);
    const { output } = await reduceScatter(ctx, input, 1, all.select(to));
    for (const shard of output.shards) {
      expect(shard.shape).toEqual([3, 2]);
      expect([...(await shard.read())]).toEqual(new Array(6).fill((n * (n + 1)) / 2));
    }
    input.free(output.shards);
    output.free();
  });

  it('reduce to one device ("AllReduce from [1,2] to [2]") on the host and on the device', async () => {
    for (const reduceOn of ['host', 'device'] as const) {
      const input = rankValued(all.select([1, 2]), Partial(), [4, 4]);
      const { output, traffic } = await reduce(ctx, input, all.device(2), all, { reduceOn });
      expect(output.group.devices.map((d) => d.id)).toEqual([2]);
      expect([...(await output.shards[0]!.read())]).toEqual(new Array(16).fill(3));
      expect(traffic.bytesToHost).toBe(reduceOn === 'host' ? 2 * 64 : 64);
      input.free();
      output.free();
    }
  });

  it('allReduce summed on the devices matches the host sum', async () => {
    for (const n of [2, 3, 4]) {
      const input = rankValued(all.select(ids(n)), Partial(), [9]);
      const { output } = await allReduce(ctx, input, all.select([3, 1]), { reduceOn: 'device' });
      for (const shard of output.shards)
        expect([...(await shard.read())]).toEqual(new Array(9).fill((n * (n + 1)) / 2));
      input.free();
      output.free();
    }
  });

  it('broadcast, scatter and send/recv', async () => {
    const data = randomArray(24, 3);
    const root = all.devices[1]!.upload(data, [4, 6], 'root');
    const b = await broadcast(ctx, root, all.select([0, 1, 3]));
    for (const shard of b.output.shards) expect(await shard.read()).toEqual(data);
    expect(b.traffic.keptShards).toBe(1);
    expect(b.traffic.bytesToHost).toBe(96);
    expect(b.traffic.bytesFromHost).toBe(2 * 96);

    const s = await scatter(ctx, root, all.select([2, 3, 0]), 1, [1, 2, 3]);
    expect(await gatherToHost(s.output)).toEqual(data);
    expect(s.traffic.bytesToHost).toBe(96);

    const r = await sendRecv(ctx, root, all.devices[3]!);
    expect(r.output.device).toBe(all.devices[3]);
    expect(await r.output.read()).toEqual(data);
    const same = await sendRecv(ctx, root, all.devices[1]!);
    expect(same.output).toBe(root);
    expect(hostBytes(same.traffic)).toBe(0);
    b.output.free([root]);
    s.output.free();
    r.output.free();
    root.free();
  });

  it('redistribute moves only what the target needs, and keeps shards in place', async () => {
    const data = randomArray(6 * 8, 11);
    const a = shardFromHost(all.select([0, 1]), data, [6, 8], Shard(0));
    const moved = await redistribute(ctx, a, all.select([0, 2]), Shard(0));
    expect(moved.output.shards[0]).toBe(a.shards[0]);
    expect(moved.traffic).toMatchObject({ bytesToHost: 96, bytesFromHost: 96, keptShards: 1 });
    expect(await gatherToHost(moved.output)).toEqual(data);

    // Shard(1) on [0,1] -> Shard(1) on [1,2]: device 1 now needs the first column block (device 0's).
    const c = shardFromHost(all.select([0, 1]), data, [6, 8], Shard(1));
    const cols = await redistribute(ctx, c, all.select([1, 2]), Shard(1));
    expect(await gatherToHost(cols.output)).toEqual(data);
    expect(cols.traffic.bytesToHost).toBe(data.byteLength);

    // Shard(1) -> Shard(0) on the same devices: each keeps its quarter locally, only the rest crosses the host.
    const rows = await redistribute(ctx, c, all.select([0, 1]), Shard(0));
    expect(await gatherToHost(rows.output)).toEqual(data);
    expect(rows.traffic.bytesToHost).toBe(data.byteLength / 2);
    expect(rows.traffic.bytesLocal).toBe(data.byteLength / 2);

    // Replicate -> uneven Shard on a subset: local copies only.
    const rep = shardFromHost(all.select([0, 1, 2]), data, [6, 8], Replicate());
    const split = await redistribute(ctx, rep, all.select([2, 0]), Shard(0, [5, 1]));
    expect(await gatherToHost(split.output)).toEqual(data);
    expect(hostBytes(split.traffic)).toBe(0);
    for (const t of [a, c, rep]) t.free();
    for (const t of [moved, cols, rows, split]) t.output.free(a.shards);
  });

  it('reuses its staging buffers across calls', async () => {
    const transport = ctx.transport(all.devices[0]!);
    if (!(transport instanceof WebGpuTransport)) return;
    const run = async () => {
      const input = rankValued(all.select([0, 1]), Partial(), [1000]);
      const { output } = await allReduce(ctx, input);
      input.free();
      output.free();
    };
    await run();
    const created = transport.device.readStaging.createdCount;
    for (let i = 0; i < 3; i++) await run();
    expect(transport.device.readStaging.createdCount).toBe(created);
    expect(all.devices[0]!.ledger.liveEntries.some((e) => e.label === 'readback staging')).toBe(true);
  });

  it('sums reductions of many chunks exactly, as one stream with bounded staging', async () => {
    const group = all.select([0, 1, 2]);
    const local = new CollectiveContext();
    try {
      // Chunks and a ragged tail per destination shard; small integers, so every sum order is exact.
      const rows = 3;
      const cols = 2 * DIRECT_CHUNK_ELEMENTS + 1001;
      const parts = group.devices.map((_, r) =>
        Float32Array.from(randomArray(rows * cols, 31 + r), (v) => Math.round(v * 50)),
      );
      const want = new Float32Array(rows * cols);
      sumInto(want, parts);
      const input = distributedFromShards(group, Partial(), [rows, cols], parts);
      const stagings = group.devices.flatMap((d) => {
        const transport = local.transport(d);
        return transport instanceof WebGpuTransport ? [transport.device.readStaging] : [];
      });
      // Earlier tests' buffers, kept for reuse, would count too.
      for (const staging of stagings) staging.trim();
      const scattered = await reduceScatter(local, input, 0, group);
      // One chunk summed and READ_AHEAD in flight, whichever destinations they are for, plus one buffer of
      // each smaller size the stream used (its first chunks, its tail), kept for reuse: ~12 MiB, where
      // reading the 8 MiB shards whole would hold 24 (and one pipeline per destination side by side held
      // three times the chunks in flight). The shards lie end to end in the stream, chunks across them.
      const classes = new Set(
        chunksOf(rows * cols, DIRECT_CHUNK_ELEMENTS, FIRST_DIRECT_CHUNK_ELEMENTS).map((c) =>
          sizeClass(c.count * 4),
        ),
      );
      const largest = Math.max(...classes);
      const smaller = [...classes].filter((c) => c < largest).reduce((a, b) => a + b, 0);
      const bound = (READ_AHEAD + 1) * largest + smaller;
      for (const staging of stagings) expect(staging.heldBytes).toBeLessThanOrEqual(bound);
      const exact = { rtol: 0, atol: 0 };
      for (const [r, shard] of scattered.output.shards.entries())
        expectClose(await shard.read(), want.subarray(r * cols, (r + 1) * cols), exact);
      const summed = await allReduce(local, input);
      for (const shard of summed.output.shards) expectClose(await shard.read(), want, exact);
      // Into outputs the GPU has written (a copy into each): Dawn takes its upload ring for every write to
      // them, and the stream its smaller chunks.
      const out = distributedFromShards(
        group,
        Replicate(),
        [rows, cols],
        group.devices.map(() => new Float32Array(rows * cols)),
      );
      for (const [r, shard] of out.shards.entries()) {
        const transport = local.transport(shard.device);
        transport.copyWithin(input.shards[r]!, shard, [{ srcOffset: 0, dstOffset: 0, count: shard.size }]);
        expect(transport.writesDirectly(shard)).toBe(!(transport instanceof WebGpuTransport));
      }
      await allReduce(local, input, group, { out });
      for (const shard of out.shards) expectClose(await shard.read(), want, exact);
      out.free();
      // Device 3 holds no partial: it only receives, and its writes are flushed chunk by chunk.
      const reduced = await reduce(local, input, all.device(3), all);
      expectClose(await reduced.output.shards[0]!.read(), want, exact);
      input.free();
      scattered.output.free();
      summed.output.free();
      reduced.output.free();
    } finally {
      local.destroy();
    }
  });

  it('reads each source once for a ReduceScatter that fits one chunk, whatever the destinations', async () => {
    const group = all.select([0, 1, 2]);
    const local = new CollectiveContext();
    try {
      const input = rankValued(group, Partial(), [6, 5]);
      const reads = group.devices.map((d) => vi.spyOn(local.transport(d), 'read'));
      const scattered = await reduceScatter(local, input, 0, group);
      // Three destination shards, summed from one read of each source.
      expect(reads.map((r) => r.mock.calls.length)).toEqual([1, 1, 1]);
      for (const shard of scattered.output.shards)
        expect(await shard.read()).toEqual(new Float32Array(10).fill(6));
      input.free();
      scattered.output.free();
    } finally {
      local.destroy();
    }
  });

  it('streams copies of many chunks exactly: an uneven AllGather between overlapping groups, a broadcast', async () => {
    const local = new CollectiveContext();
    try {
      const rows = [COPY_CHUNK_ELEMENTS + 333, 2 * COPY_CHUNK_ELEMENTS + 7];
      const whole = randomArray(rows[0]! + rows[1]!, 77);
      const from = all.select([0, 1]);
      const to = all.select([1, 2]);
      const input = shardFromHost(from, whole, [whole.length], Shard(0, rows));
      const stagings = from.devices.flatMap((d) => {
        const transport = local.transport(d);
        return transport instanceof WebGpuTransport ? [transport.device.readStaging] : [];
      });
      for (const staging of stagings) staging.trim();
      const gathered = await allGather(local, input, to);
      // A source's staging stays at the chunks in flight, not the size of its shard.
      const bound = (READ_AHEAD + 1) * sizeClass(COPY_CHUNK_ELEMENTS * 4) + sizeClass(333 * 4);
      for (const staging of stagings) expect(staging.heldBytes).toBeLessThanOrEqual(bound);
      const exact = { rtol: 0, atol: 0 };
      for (const shard of gathered.output.shards) expectClose(await shard.read(), whole, exact);
      // Devices 1 and 2 only receive (no read of theirs carries their writes to the queue).
      const root = all.devices[0]!.upload(whole, [whole.length], 'root');
      const sent = await broadcast(local, root, all.select([1, 2]));
      for (const shard of sent.output.shards) expectClose(await shard.read(), whole, exact);
      input.free(gathered.output.shards);
      gathered.output.free();
      sent.output.free();
      root.free();
    } finally {
      local.destroy();
    }
  });

  it('gathers into reused outputs that the host keeps writing in place', async () => {
    const group = all.select([0, 1, 2]);
    const whole = (call: number) => Float32Array.from({ length: 9 * 4 }, (_, i) => i + 100 * call);
    const out = distributedFromShards(
      group,
      Replicate(),
      [9, 4],
      group.devices.map(() => new Float32Array(9 * 4)),
    );
    for (let call = 0; call < 3; call++) {
      const input = shardFromHost(group, whole(call), [9, 4], Shard(0, [2, 3, 4]));
      await allGather(ctx, input, group, { out });
      for (const shard of out.shards) expect(await shard.read()).toEqual(whole(call));
      input.free();
    }
    await group.sync();
    // Each device's own rows came from the host's read of them, not a copy on the device: a copy into
    // the outputs would have sent every later write into them through Dawn's upload ring.
    for (const shard of out.shards) {
      const transport = ctx.transport(shard.device);
      expect(transport.writesDirectly(shard)).toBe(
        !(transport instanceof WebGpuTransport) || transport.device.adapter.isSoftware,
      );
    }
    out.free();
  });

  it('sums into fresh outputs each call: freed ones come back uncleared and are written in full', async () => {
    const group = all.select([0, 1, 2]);
    // Large enough for the device's cache of freed buffers (2 MiB).
    const n = 600 * 1024;
    for (let call = 0; call < 3; call++) {
      const parts = group.devices.map((_, r) => new Float32Array(n).fill(10 * call + r));
      const input = distributedFromShards(group, Partial(), [n], parts);
      const { output } = await allReduce(ctx, input);
      for (const shard of output.shards) {
        expect((await shard.read()).every((v) => v === 30 * call + 3)).toBe(true);
        const transport = ctx.transport(shard.device);
        if (call > 0 && transport instanceof WebGpuTransport) {
          expect((shard as GpuTensor).recycled).toBe(true);
          expect(transport.writesDirectly(shard)).toBe(transport.device.adapter.isSoftware);
        }
      }
      input.free();
      output.free();
    }
  });

  it('moves between host-memory devices and WebGPU devices alike', async () => {
    const cpu = await DeviceGroup.open({ count: 2, backend: 'cpu' });
    const local = new CollectiveContext();
    try {
      const mixed = DeviceGroup.of([cpu.devices[0]!, all.devices[0]!, cpu.devices[1]!]);
      const input = rankValued(mixed, Partial(), [2, 5]);
      const { output } = await allReduce(local, input);
      for (const shard of output.shards) expect([...(await shard.read())]).toEqual(new Array(10).fill(6));
      const data = randomArray(30, 5);
      const sharded = shardFromHost(cpu, data, [6, 5], Shard(1, [2, 3]));
      const gathered = await allGather(local, sharded, mixed);
      for (const shard of gathered.output.shards) expect(await shard.read()).toEqual(data);
    } finally {
      local.destroy();
      cpu.destroy();
    }
  });

  it('raises typed errors', async () => {
    const g = all.select([0, 1]);
    expect(() => shardFromHost(g, new Float32Array(15), [5, 3], Shard(0))).toThrow(
      expect.objectContaining({ code: 'SPLIT' }),
    );
    expect(() => shardFromHost(g, new Float32Array(15), [5, 3], Shard(0, [2, 2]))).toThrow(
      expect.objectContaining({ code: 'SPLIT' }),
    );
    expect(() => shardFromHost(g, new Float32Array(14), [5, 3], Replicate(), 'x')).toThrow(
      expect.objectContaining({ code: 'SHAPE', message: "'x': 14 values do not fill shape [5, 3]" }),
    );
    const a = all.devices[0]!.upload(new Float32Array(4), [4], 'a');
    expect(() => new DistributedTensor(g, Replicate(), [4], [a, a])).toThrow(
      expect.objectContaining({ code: 'GROUP' }),
    );
    await expect(reduce(ctx, rankValued(g, Partial(), [4]), all.devices[3]!, g)).rejects.toSatisfy((e) =>
      isParallelError(e, 'GROUP'),
    );
    a.free();
  });
});
