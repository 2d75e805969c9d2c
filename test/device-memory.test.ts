import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { DIRECT_WRITE_MAX_BYTES, type GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import { StagingPool } from '../src/runtime/webgpu/staging-pool.js';
import { expectClose } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

/** Copies must be exact. */
const EXACT = { rtol: 0, atol: 0 };

/** Values that differ at every index and between calls, so a stale or misplaced byte shows. */
function pattern(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13) % 1009) - 500);
}

/** Clears a tensor on the GPU: from then on Dawn writes it through its upload ring, never directly. */
function writeOnGpu(device: GpuDevice, tensor: Tensor): void {
  const buffer = (tensor as GpuTensor).buffer;
  const encoder = device.gpu.createCommandEncoder({ label: `clear ${tensor.label}` });
  encoder.clearBuffer(buffer);
  device.submit([encoder.finish()], [{ buffer, writes: true }]);
}

/** A tensor of a little over 2 MiB: past where fresh memory costs lavapipe page faults on first use. */
const ELEMENTS = (2 * 1024 * 1024) / 4 + 256;
const BYTES = ELEMENTS * 4;

describe.skipIf(!available)('WebGPU device memory', () => {
  let group: DeviceGroup;
  let device: GpuDevice;

  beforeAll(async () => {
    group = await openTestGroup(1);
    device = group.devices[0] as GpuDevice;
  });
  afterAll(() => group?.destroy());

  describe('staging (writes past the direct limit, pooled reads)', () => {
    it('writes a large array through the upload pool into a tensor kernels have used, at an offset', async () => {
      const n = (3 * DIRECT_WRITE_MAX_BYTES) / 4 + 5;
      const tensor = device.upload(new Float32Array(n + 3), [n + 3], 'target');
      // A kernel reads it first: Dawn's own writeBuffer is the slow path for such a buffer on lavapipe.
      (await device.kernels.scale(tensor, 1)).free();
      const data = pattern(n, 1);
      device.write(tensor, data, 3);
      const back = await device.read(tensor);
      expect(back.subarray(0, 3)).toEqual(new Float32Array(3));
      expectClose(back.subarray(3), data, EXACT);
      expect(device.uploadStaging.createdCount).toBeGreaterThan(0);
      tensor.free();
    });

    it('reuses its upload and readback buffers once the queue is done with them', async () => {
      const n = DIRECT_WRITE_MAX_BYTES / 2; // 2x the direct limit in bytes
      const tensor = device.empty([n], 'f32', 'reused');
      writeOnGpu(device, tensor);
      device.write(tensor, pattern(n, 2));
      expectClose(await device.read(tensor), pattern(n, 2), EXACT);
      const uploads = device.uploadStaging.createdCount;
      const readbacks = device.readStaging.createdCount;
      for (let call = 3; call < 6; call++) {
        device.write(tensor, pattern(n, call));
        expectClose(await device.read(tensor), pattern(n, call), EXACT);
      }
      expect(device.uploadStaging.createdCount).toBe(uploads);
      expect(device.readStaging.createdCount).toBe(readbacks);
      expect(device.ledger.liveEntries.map((e) => e.label)).toEqual(
        expect.arrayContaining(['upload staging', 'readback staging']),
      );
      tensor.free();
    });

    it('keeps many back-to-back writes in order, whichever path each takes', async () => {
      const piece = DIRECT_WRITE_MAX_BYTES / 4 / 2 + 7;
      const pieces = 12;
      const whole = pattern(piece * pieces, 9);
      for (const gpuWritten of [false, true]) {
        const tensor = device.empty([piece * pieces], 'f32', 'pieces');
        if (gpuWritten) writeOnGpu(device, tensor);
        // The first pass writes zeros, the second the pattern over it: a write applied out of order shows.
        for (const source of [new Float32Array(piece * pieces), whole]) {
          for (let k = 0; k < pieces; k++) {
            device.write(tensor, source.subarray(k * piece, (k + 1) * piece), k * piece);
          }
        }
        expectClose(await device.read(tensor), whole, EXACT);
        tensor.free();
      }
    });

    it('writes a buffer the GPU has never written straight into its memory, whatever the size', async () => {
      const n = (3 * DIRECT_WRITE_MAX_BYTES) / 4 + 5;
      const tensor = device.empty([n], 'f32', 'direct');
      const buffer = (tensor as GpuTensor).buffer;
      expect(device.writesDirectly(buffer)).toBe(true);
      const uploads = device.uploadStaging.createdCount;
      device.write(tensor, pattern(n, 31));
      // No upload staging and nothing in Dawn's ring: the write was the copy itself.
      expect(device.uploadStaging.createdCount).toBe(uploads);
      expect(device.uploadRingBytes).toBe(0);
      // Had Dawn staged them instead (a write too large for its ring gets fresh memory), every write would
      // page-fault its ~6 MiB anew (~1,500 faults); straight into the tensor, its pages are touched once.
      const again = pattern(n, 31);
      const faults = process.resourceUsage().minorPageFault;
      for (let k = 0; k < 4; k++) device.write(tensor, again);
      expect(process.resourceUsage().minorPageFault - faults).toBeLessThan(1000);
      // While a read of it is in flight the queue uses it, and Dawn would take its ring.
      const reading = device.read(tensor);
      expect(device.writesDirectly(buffer)).toBe(false);
      expectClose(await reading, pattern(n, 31), EXACT);
      expect(device.writesDirectly(buffer)).toBe(true);
      // A kernel only reads its input, and writes its output.
      const scaled = await device.kernels.scale(tensor, 2);
      await device.sync();
      expect(device.writesDirectly(buffer)).toBe(true);
      expect(device.writesDirectly((scaled as GpuTensor).buffer)).toBe(false);
      // Once the GPU has written it, never again (as Dawn decides).
      writeOnGpu(device, tensor);
      await device.sync();
      expect(device.writesDirectly(buffer)).toBe(false);
      device.write(tensor, pattern(n, 32));
      expectClose(await device.read(tensor), pattern(n, 32), EXACT);
      scaled.free();
      tensor.free();
    });

    it("keeps direct writes in Dawn's upload ring until a submit has carried them and completed", async () => {
      // A device of its own: the ring's positions depend on every write before.
      const own = await openTestGroup(1);
      const device = own.devices[0] as GpuDevice;
      const MiB = 1024 * 1024;
      const sizes = [2 * MiB, 2 * MiB, MiB, 2 * MiB];
      const tensors = sizes.map((bytes, k) => device.empty([bytes / 4], 'f32', `ring ${k}`));
      // Dawn writes a buffer the GPU has never written straight into its memory; these take its ring.
      for (const t of tensors) writeOnGpu(device, t);
      await device.sync();
      const data = sizes.map((bytes, k) => pattern(bytes / 4, 20 + k));
      device.write(tensors[0]!, data[0]!);
      device.write(tensors[1]!, data[1]!);
      expect(device.uploadRingBytes).toBe(4 * MiB);
      // Nothing submitted them: waiting on the event loop must not free them (Dawn still holds them).
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(device.uploadRingBytes).toBe(4 * MiB);
      device.write(tensors[2]!, data[2]!); // the ring is full: through the upload pool
      expect(device.uploadRingBytes).toBe(4 * MiB);
      await device.sync();
      expect(device.uploadRingBytes).toBe(0);
      device.write(tensors[3]!, data[3]!);
      expect(device.uploadRingBytes).toBe(2 * MiB);
      for (const [k, t] of tensors.entries()) expectClose(await device.read(t), data[k]!, EXACT);
      expect(device.uploadRingBytes).toBe(0);
      for (const t of tensors) t.free();
      own.destroy();
    });

    it('keeps idle buffers up to its cap and hands the rest back to the driver and the ledger', () => {
      const piece = 8192;
      const pool = new StagingPool(device, 'readback', 2 * piece + piece / 2);
      const before = device.ledger.usedBytes;
      const buffers = Array.from({ length: 4 }, () => pool.acquire(piece));
      expect(device.ledger.usedBytes - before).toBe(4 * piece);
      for (const b of buffers) pool.release(b);
      expect(pool.idleBytes).toBe(2 * piece);
      expect(device.ledger.usedBytes - before).toBe(2 * piece);
      // The kept ones are handed out again; a third is made anew.
      const again = Array.from({ length: 3 }, () => pool.acquire(piece));
      expect(pool.createdCount).toBe(5);
      for (const b of again) pool.release(b);
      pool.destroy();
      expect(device.ledger.usedBytes).toBe(before);
    });

    it('hands back everything kept for reuse on releaseCached', async () => {
      const big = device.upload(pattern(ELEMENTS, 4), [ELEMENTS], 'big');
      expectClose(await device.read(big), pattern(ELEMENTS, 4), EXACT);
      big.free();
      await device.uploadStaging.settled();
      const kept = device.ledger.liveEntries.filter(
        (e) => e.label === 'tensor cache' || e.label.endsWith('staging'),
      );
      expect(kept.length).toBeGreaterThan(0);
      expect(group.releaseCached()).toBe(kept.reduce((n, e) => n + e.bytes, 0));
      expect(device.ledger.liveEntries.filter((e) => kept.includes(e))).toEqual([]);
      expect(group.releaseCached()).toBe(0);
    });

    it('gives its staging bytes back to the ledger when trimmed', async () => {
      await device.sync();
      await device.uploadStaging.settled();
      device.uploadStaging.trim();
      device.readStaging.trim();
      expect(device.ledger.liveEntries.some((e) => e.label.endsWith('staging'))).toBe(false);
    });
  });

  describe('tensor buffer cache', () => {
    it('hands a freed buffer to the next tensor of its size, zeroed, under the new label', async () => {
      device.tensorCache.trim();
      const first = device.upload(new Float32Array(ELEMENTS).fill(5), [ELEMENTS], 'first');
      const buffer = first.buffer;
      first.free();
      expect(device.tensorCache.heldBytes).toBe(BYTES);
      expect(device.ledger.liveEntries.filter((e) => e.label === 'tensor cache')).toHaveLength(1);
      const second = device.empty([ELEMENTS], 'f32', 'second');
      expect(second.buffer).toBe(buffer);
      expect(second.buffer.label).toBe('second');
      expect(device.tensorCache.heldBytes).toBe(0);
      const values = await second.read();
      expect(values.findIndex((v) => v !== 0)).toBe(-1);
      // A different size or a small tensor never gets it.
      second.free();
      const other = device.empty([ELEMENTS + 1], 'f32', 'other');
      const small = device.empty([16], 'f32', 'small');
      expect(other.buffer).not.toBe(buffer);
      expect(small.buffer).not.toBe(buffer);
      other.free();
      small.free();
      // All three are kept, each for its own size (small ones too: their bind groups are reused).
      expect(device.tensorCache.heldBytes).toBe(BYTES + (ELEMENTS + 1) * 4 + 64);
    });

    it('gives a tensor written in full a reused buffer uncleared, one still written in place first', async () => {
      device.tensorCache.trim();
      // Kept: one the GPU has written (a kernel output), then one only the host has written.
      const x = device.upload(pattern(ELEMENTS, 6), [ELEMENTS], 'x');
      const written = await device.kernels.scale(x, 1);
      const hostOnly = device.upload(pattern(ELEMENTS, 7), [ELEMENTS], 'host only');
      await device.sync();
      const inPlace = hostOnly.buffer;
      written.free();
      hostOnly.free();
      x.free();
      const overwritten = device.empty([ELEMENTS], 'f32', 'overwritten', { overwritten: true });
      expect(overwritten.buffer).toBe(inPlace);
      expect(device.writesDirectly(inPlace)).toBe(true);
      // Not cleared: what the last owner wrote is still there until the new one writes it all.
      expectClose(await overwritten.read(), pattern(ELEMENTS, 7), EXACT);
      // Without the option the other kept buffer comes back zeroed, as `empty` promises.
      const zeroed = device.empty([ELEMENTS], 'f32', 'zeroed');
      expect(zeroed.recycled).toBe(true);
      expect((await zeroed.read()).findIndex((v) => v !== 0)).toBe(-1);
      overwritten.free();
      zeroed.free();
    });

    it('uploads into a recycled buffer through the same write path as any used buffer', async () => {
      device.empty([ELEMENTS], 'f32', 'old').free();
      const data = pattern(ELEMENTS, 4);
      const uploaded = device.upload(data, [ELEMENTS], 'uploaded');
      expect(uploaded.recycled).toBe(true);
      expectClose(await uploaded.read(), data, EXACT);
      uploaded.free();
    });

    it('gives kept bytes back when a tensor would not fit the budget otherwise', async () => {
      const tight = await openTestGroup(1, Math.floor(1.5 * BYTES));
      try {
        const dev = tight.devices[0] as GpuDevice;
        dev.empty([ELEMENTS], 'f32', 'x').free();
        expect(dev.tensorCache.heldBytes).toBe(BYTES);
        const y = dev.empty([ELEMENTS + 1024], 'f32', 'y');
        expect(dev.tensorCache.heldBytes).toBe(0);
        expect(dev.ledger.usedBytes).toBe(BYTES + 4096);
        let code: string | undefined;
        try {
          dev.empty([ELEMENTS], 'f32', 'z');
        } catch (error) {
          if (isParallelError(error)) code = error.code;
        }
        expect(code).toBe('MEMORY_BUDGET');
        y.free();
      } finally {
        tight.destroy();
      }
    });

    it('gives kept bytes to a readback staging buffer that would not fit otherwise', async () => {
      const tight = await openTestGroup(1, Math.floor(2.6 * BYTES));
      try {
        const dev = tight.devices[0] as GpuDevice;
        dev.empty([ELEMENTS], 'f32', 'x').free();
        // Another size, so the kept buffer stays kept: 2 x BYTES in the ledger, and no room for staging.
        const w = dev.upload(new Float32Array(ELEMENTS + 1).fill(2), [ELEMENTS + 1], 'w');
        expect(dev.tensorCache.heldBytes).toBe(BYTES);
        const values = await w.read();
        expect(values[ELEMENTS]).toBe(2);
        expect(dev.tensorCache.heldBytes).toBe(0);
        w.free();
      } finally {
        tight.destroy();
      }
    });
  });

  describe('device lifecycle', () => {
    it.skipIf(process.platform !== 'linux')(
      "reuses a destroyed device's Dawn instance: no threads left behind",
      async () => {
        const threads = () => readdirSync('/proc/self/task').length;
        const cycle = async () => {
          const g = await openTestGroup(2);
          const t = g.devices[0]!.upload(new Float32Array(64).fill(1), [64], 'lifecycle');
          expect((await (await g.devices[0]!.kernels.scale(t, 2)).read())[0]).toBe(2);
          g.destroy();
        };
        await cycle();
        const after = threads();
        for (let i = 0; i < 3; i++) await cycle();
        // A new instance per device left ~5 threads behind per device: 30 here.
        expect(threads() - after).toBeLessThanOrEqual(3);
      },
    );
  });
});
