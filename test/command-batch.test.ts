import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectiveContext } from '../src/collectives/context.js';
import { sendRecv } from '../src/collectives/send-recv.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { BATCH_MAX_PASSES } from '../src/runtime/webgpu/command-batch.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import { PARAM_SLOTS } from '../src/runtime/webgpu/param-ring.js';
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

  it('chains of kernels across many batches and around the parameter ring give the exact result', async () => {
    const x = d0.upload(
      values(256, (i) => i),
      [256],
      'x',
    );
    let y: Tensor = await d0.kernels.scale(x, 1);
    const kernels = PARAM_SLOTS * 2 + 7;
    expect(kernels).toBeGreaterThan(BATCH_MAX_PASSES * 10);
    for (let i = 0; i < kernels; i++) {
      const next = await d0.kernels.scale(y, i % 2 === 0 ? 2 : 0.5);
      y.free();
      y = next;
    }
    // An odd count of alternating x2 and x0.5 ends on x2; powers of two are exact.
    expect(Array.from(await y.read())).toEqual(Array.from(values(256, (i) => 2 * i)));
    x.free();
    y.free();
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
