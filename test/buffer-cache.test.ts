import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { CACHE_MIN_BYTES } from '../src/runtime/webgpu/buffer-cache.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';
const ELEMENTS = CACHE_MIN_BYTES / 4 + 256;
const BYTES = ELEMENTS * 4;

describe.skipIf(!available)('WebGPU tensor buffer cache', () => {
  let group: DeviceGroup;
  let device: GpuDevice;

  beforeAll(async () => {
    group = await openTestGroup(1);
    device = group.devices[0] as GpuDevice;
  });
  afterAll(() => group?.destroy());

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
    // Both large ones are kept, each for its own size.
    expect(device.tensorCache.heldBytes).toBe(BYTES + (ELEMENTS + 1) * 4);
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
