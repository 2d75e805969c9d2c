import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import { specialize } from '../src/kernels/webgpu/shader-source.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { MemoryLedger } from '../src/runtime/memory-ledger.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { liveBytes, openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = await webGpuAvailable();

async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    if (isParallelError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('memory ledger', () => {
  it('refuses an allocation over budget before reserving, naming device, bytes, use and budget', () => {
    const ledger = new MemoryLedger('webgpu:1', 1000);
    const handle = ledger.reserve(600, 'w');
    expect(() => ledger.reserve(500, 'x')).toThrow(/webgpu:1.*500 bytes.*'x'.*600 bytes in use, budget 1000/);
    expect(ledger.usedBytes).toBe(600);
    ledger.release(handle);
    expect(ledger.usedBytes).toBe(0);
    expect(ledger.peakBytes).toBe(600);
  });
});

describe('shader template', () => {
  it('repeats, branches and checks every value', () => {
    const code = '{{#for I < N}}a{{I}};{{/for I}}{{#if F}}yes{{#else F}}no{{/if F}}';
    expect(specialize('t', code, { N: 3, F: 0 })).toBe('a0;a1;a2;no');
    expect(() => specialize('t', code, { N: 3, F: 1, EXTRA: 2 })).toThrow(/EXTRA are not used/);
    expect(() => specialize('t', code, { F: 1 })).toThrow(/N must be/);
  });
});

describe.skipIf(!available)(`device errors on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(2, 64 * 1024);
  });
  afterAll(() => group?.destroy());

  it('MEMORY_BUDGET names the device and leaves the ledger as it was', async () => {
    const device = group.devices[1]!;
    const before = liveBytes(device);
    expect(await codeOf(() => device.empty([128, 256], 'f32', 'too-big'))).toBe('MEMORY_BUDGET');
    expect(liveBytes(device)).toBe(before);
    const t = device.empty([64, 64], 'f32', 'fits');
    expect(liveBytes(device)).toBe(before + 64 * 64 * 4);
    t.free();
    expect(liveBytes(device)).toBe(before);
  });

  it('SHAPE, DEVICE_MISMATCH and DESTROYED are typed', async () => {
    const [d0, d1] = group.devices as [GpuDevice, GpuDevice];
    const a = d0.upload(new Float32Array(6), [2, 3], 'a');
    const b = d0.upload(new Float32Array(8), [4, 2], 'b');
    const c = d1.upload(new Float32Array(6), [3, 2], 'c');
    expect(await codeOf(d0.kernels.matmul(a, b))).toBe('SHAPE');
    expect(await codeOf(d0.kernels.matmul(a, c))).toBe('DEVICE_MISMATCH');
    expect(await codeOf(() => d0.upload(new Float32Array(5), [2, 3], 'short'))).toBe('SHAPE');
    a.free();
    expect(await codeOf(d0.kernels.scale(a, 2))).toBe('DESTROYED');
  });

  it('a WGSL error is SHADER_COMPILE naming the kernel', async () => {
    const device = group.devices[0] as GpuDevice;
    if (device.backend !== 'webgpu') return;
    const error = await device.pipelines
      .get({ key: 'broken/test', code: () => 'fn main( {' })
      .catch((e) => e);
    expect(isParallelError(error, 'SHADER_COMPILE')).toBe(true);
    expect(String(error.message)).toMatch(/broken\/test/);
  });

  it('a lost device surfaces as DEVICE_LOST, not a hang', async () => {
    const lone = await DeviceGroup.open({ count: 1, backend: TEST_BACKEND });
    const device = lone.devices[0] as GpuDevice;
    if (device.backend !== 'webgpu') return lone.destroy();
    const t = device.upload(new Float32Array(4), [4], 't');
    device.gpu.destroy();
    expect(await codeOf(device.read(t))).toBe('DEVICE_LOST');
    expect(await codeOf(device.sync())).toBe('DEVICE_LOST');
    lone.destroy();
  });
});
