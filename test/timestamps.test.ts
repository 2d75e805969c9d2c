import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { hostOffsetNs } from '../src/runtime/webgpu/timestamps.js';
import { randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

describe('hostOffsetNs (device ticks onto the host clock)', () => {
  it('starts the pass the device began soonest at its submit, and no pass before its own', () => {
    // True offset 1000 ns; the passes began 30, 5 and 400 ns after their submits.
    const submits = [2000, 5000, 9000];
    const starts = [2030, 5005, 9400].map((host) => host - 1000);
    const offset = hostOffsetNs(submits, starts);
    expect(offset).toBe(1000 - 5);
    starts.forEach((tick, i) => {
      expect(tick + offset).toBeGreaterThanOrEqual(submits[i]!);
    });
  });

  it('shifts a whole batch late by as much as one submit time taken late', () => {
    const starts = [1030, 4005, 8400];
    // The second submit time was read 3 ms after its pass had begun (the call returned late).
    expect(hostOffsetNs([1000, 4005 + 3e6, 8000], starts)).toBe(3e6);
  });
});

describe.skipIf(!available)('kernel spans from device timestamps', () => {
  let group: DeviceGroup;
  let device: GpuDevice;

  beforeAll(async () => {
    group = await openTestGroup(1);
    device = group.devices[0] as GpuDevice;
  });
  afterAll(() => group?.destroy());

  it('lie between each kernel being submitted and the host seeing it finish', async () => {
    expect(device.hasDeviceTimestamps).toBe(true);
    const a = device.upload(randomArray(96 * 80, 1), [96, 80], 'a');
    const b = device.upload(randomArray(80 * 72, 2), [80, 72], 'b');
    const done: number[] = [];
    const outputs = [];
    device.enableProfiling(true);
    try {
      for (let i = 0; i < 24; i++) {
        device.setProfileTag(`k${i}`);
        outputs.push(await device.kernels.matmul(a, b));
        await device.sync();
        done.push(performance.now() * 1e6);
      }
    } finally {
      device.enableProfiling(false);
    }
    const spans = await device.takeSpans();
    expect(spans.map((s) => s.tag)).toEqual(done.map((_, i) => `k${i}`));
    spans.forEach((s, i) => {
      expect(s.startNs).toBeGreaterThanOrEqual(s.submittedNs!);
      expect(s.endNs).toBeGreaterThanOrEqual(s.startNs);
      // Aligned late, a span would end after the host had already seen the kernel's work done.
      expect(s.endNs).toBeLessThanOrEqual(done[i]!);
    });
    for (const t of [a, b, ...outputs]) t.free();
  });
});
