import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectiveContext } from '../src/collectives/context.js';
import { sendRecv } from '../src/collectives/send-recv.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { BATCH_MAX_PASSES } from '../src/runtime/webgpu/command-batch.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import { PARAM_SLOT_BYTES, PARAM_SLOTS, ParamTable } from '../src/runtime/webgpu/param-table.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * Kernels wait in a device's batch until something needs them submitted. Each case here would read stale
 * or wrong values (or hit a validation error) if a flush were missed: writes, reads, frees and reuse,
 * collectives, and other devices, after kernels that have not been submitted yet.
 */
const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

const values = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

describe.skipIf(!available)('batched kernels keep their order on the queue', () => {
  let group: DeviceGroup;
  let d0: GpuDevice;
  let d1: GpuDevice;
  beforeAll(async () => {
    group = await openTestGroup(2);
    [d0, d1] = group.devices as [GpuDevice, GpuDevice];
  });
  afterAll(() => group?.destroy());

  it('a write after a pending kernel does not reach the kernel', async () => {
    const x = d0.upload(
      values(300, (i) => i),
      [300],
      'x',
    );
    const y = await d0.kernels.scale(x, 2);
    d0.write(
      x,
      values(300, () => -1),
    );
    expect(Array.from(await y.read())).toEqual(Array.from(values(300, (i) => 2 * i)));
    expect(Array.from(await x.read())).toEqual(Array.from(values(300, () => -1)));
    x.free();
    y.free();
  });

  it('a read right after pending kernels sees all of them', async () => {
    const x = d0.upload(
      values(1000, (i) => i % 7),
      [1000],
      'x',
    );
    let y: Tensor = x;
    for (let i = 0; i < 5; i++) {
      const next = await d0.kernels.add(y, x);
      if (y !== x) y.free();
      y = next;
    }
    expect(Array.from(await y.read())).toEqual(Array.from(values(1000, (i) => 6 * (i % 7))));
    x.free();
    y.free();
  });

  it('a freed input’s buffer reused by the next tensor is written only after the kernel read it', async () => {
    // Small: kept by the buffer cache and handed to the next tensor of its size. Large: the same, by size.
    for (const n of [64, (3 * 1024 * 1024) / 4]) {
      const x = d0.upload(
        values(n, (i) => i % 1000),
        [n],
        'x',
      );
      const buffer = (x as GpuTensor).buffer;
      const y = await d0.kernels.scale(x, 3);
      x.free();
      const z = d0.upload(
        values(n, () => 7),
        [n],
        'z',
      );
      expect((z as GpuTensor).buffer).toBe(buffer);
      const back = await y.read();
      expect(back[0]).toBe(0);
      expect(back[n - 1]).toBe(3 * ((n - 1) % 1000));
      expect((await z.read())[n - 1]).toBe(7);
      y.free();
      z.free();
    }
  });

  it('a buffer destroyed while a pending kernel uses it is destroyed after the submit', async () => {
    const x = d0.upload(
      values(64, (i) => i),
      [64],
      'x',
    );
    const y = await d0.kernels.scale(x, 2);
    // What the cache does with a buffer it does not keep: without the deferral the submit fails validation.
    d0.retire((x as GpuTensor).buffer);
    expect((await y.read())[63]).toBe(126);
    y.free();
  });

  it('a collective reads what a pending kernel writes, and writes into another device’s pending work', async () => {
    const ctx = new CollectiveContext();
    try {
      const x = d0.upload(
        values(500, (i) => i),
        [500],
        'x',
      );
      const y = await d0.kernels.scale(x, 5);
      const target = d1.upload(
        values(500, () => 1),
        [500],
        'target',
      );
      // A kernel on device 1 reads the target, then the collective overwrites it: the kernel sees 1s.
      const before = await d1.kernels.scale(target, 2);
      const { output } = await sendRecv(ctx, y, d1, { out: target });
      expect(output).toBe(target);
      expect(Array.from(await before.read())).toEqual(Array.from(values(500, () => 2)));
      expect(Array.from(await output.read())).toEqual(Array.from(values(500, (i) => 5 * i)));
      for (const t of [x, y, target, before]) t.free();
    } finally {
      ctx.destroy();
    }
  });

  it('chains of kernels across many batches, with more distinct parameters than the table holds, are exact', async () => {
    const host = values(256, (i) => i);
    const x = d0.upload(host, [256], 'x');
    let y: Tensor = await d0.kernels.scale(x, 1);
    // Every factor is new, so slots are reassigned many times over, some while earlier batches still run.
    const kernels = PARAM_SLOTS * 2 + 7;
    expect(kernels).toBeGreaterThan(BATCH_MAX_PASSES * 10);
    for (let i = 0; i < kernels; i++) {
      const up = Math.fround(1 + (i >> 1) / 4096);
      const factor = i % 2 === 0 ? up : Math.fround(1 / up);
      // f32 products are correctly rounded in WGSL, so the host's rounding of each step is the device's.
      for (let e = 0; e < host.length; e++) host[e] = Math.fround(host[e]! * factor);
      const next = await d0.kernels.scale(y, factor);
      y.free();
      y = next;
    }
    expect(Array.from(await y.read())).toEqual(Array.from(host));
    x.free();
    y.free();
  });

  it('the parameter table keeps one slot per contents and never reassigns one the pending batch uses', () => {
    const table = new ParamTable(d0.gpu, 'test');
    const block = (...words: number[]) => new Uint32Array(words).buffer;
    try {
      const a = table.take(block(1, 2))!;
      expect(table.take(block(1, 2))).toBe(a);
      const b = table.take(block(1, 3))!;
      expect(b).not.toBe(a);
      // Both are new to the pending batch: one run of two slots, each zero past its contents.
      const runs = table.seal();
      expect(runs.map((r) => [r.byteOffset, r.bytes.length])).toEqual([
        [Math.min(a, b), 2 * PARAM_SLOT_BYTES],
      ]);
      expect(Array.from(new Uint32Array(runs[0]!.bytes.slice(a, a + 12).buffer))).toEqual([1, 2, 0]);
      // Already written: taking them again writes nothing.
      expect(table.take(block(1, 2))).toBe(a);
      expect(table.seal()).toEqual([]);
      // Filling the table from a new batch that holds `a`: every other slot is reassigned before `a`.
      expect(table.take(block(1, 2))).toBe(a);
      const offsets = new Set<number>();
      for (let i = 0; i < PARAM_SLOTS - 1; i++) offsets.add(table.take(block(9, i))!);
      expect(offsets.has(a)).toBe(false);
      expect(offsets.size).toBe(PARAM_SLOTS - 1);
      // Every slot is now the pending batch's: a new block has to wait for the submit.
      expect(table.take(block(7))).toBeNull();
      table.seal();
      expect(table.take(block(7))).not.toBeNull();
      // More than a slot holds, or not whole 32-bit words, never fits.
      expect(table.take(new ArrayBuffer(PARAM_SLOT_BYTES + 4))).toBeNull();
    } finally {
      table.destroy();
    }
  });

  it('profiling still records one span per kernel when kernels share a submit', async () => {
    const x = d0.upload(
      values(64, (i) => i),
      [64],
      'x',
    );
    d0.enableProfiling(true);
    await d0.takeSpans();
    const outs = [];
    for (let i = 0; i < 40; i++) outs.push(await d0.kernels.scale(x, 2));
    const spans = await d0.takeSpans();
    d0.enableProfiling(false);
    expect(spans.filter((s) => s.label.startsWith('scale')).length).toBe(40);
    for (const s of spans) expect(s.endNs).toBeGreaterThanOrEqual(s.startNs);
    for (const o of outs) o.free();
    x.free();
  });
});
