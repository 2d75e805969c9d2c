import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MatmulPlanner } from '../src/kernels/webgpu/matmul-planner.js';
import { WebGpuKernels } from '../src/kernels/webgpu/webgpu-kernels.js';
import type { Tensor } from '../src/runtime/tensor.js';
import { releaseGpu, requestAdapter, summarizeAdapter } from '../src/runtime/webgpu/dawn.js';
import { DIRECT_WRITE_MAX_BYTES, GpuDevice, type WritePathKind } from '../src/runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../src/runtime/webgpu/gpu-tensor.js';
import { expectClose } from './support/compare.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';
const EXACT = { rtol: 0, atol: 0 };

function pattern(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13) % 1009) - 500);
}

/** A device on this machine's adapter with the write path a GPU opener (or a browser's) would choose. */
async function openWith(writePath: WritePathKind, id: number): Promise<GpuDevice> {
  const opened = await requestAdapter();
  if (!opened) throw new Error('no adapter');
  const summary = summarizeAdapter(opened.adapter);
  return GpuDevice.open({
    id,
    instance: opened.instance,
    adapter: opened.adapter,
    summary,
    makeKernels: (d) => new WebGpuKernels(d, new MatmulPlanner()),
    writePath,
    onDestroy: () => releaseGpu(opened.instance),
  });
}

/**
 * The seam between a device and what its implementation does with writes: the plain `queue` path (every
 * write one writeBuffer, as on a GPU or in a browser) and Dawn's host-visible path both give the same
 * values for every kind of write: fresh, into buffers the GPU wrote, past the direct limit, and the
 * kernels' parameter ring across many batches.
 */
describe.skipIf(!available)('write paths', () => {
  const devices: GpuDevice[] = [];
  beforeAll(async () => {
    devices.push(await openWith('queue', 0), await openWith('host-visible', 1));
  });
  afterAll(() => {
    for (const d of devices) d.destroy();
  });

  it('every kind of write lands, on either path', async () => {
    for (const device of devices) {
      const n = (3 * DIRECT_WRITE_MAX_BYTES) / 4 + 5;
      const tensor = device.upload(pattern(n, 1), [n], 'target');
      expectClose(await device.read(tensor), pattern(n, 1), EXACT);
      // A kernel writes into the buffer: from then on no write is direct.
      (await device.kernels.scale(tensor, 2)).free();
      const scaled = await device.kernels.scale(tensor, 1);
      device.write(scaled, pattern(n - 3, 2), 3);
      const back = await device.read(scaled);
      expectClose(back.subarray(0, 3), pattern(3, 1), EXACT);
      expectClose(back.subarray(3), pattern(n - 3, 2), EXACT);
      // Small writes between kernels that read the same buffer, in order.
      const small = device.upload(new Float32Array(64), [64], 'small');
      let sum = 0;
      for (let i = 0; i < 40; i++) {
        device.write(small, new Float32Array(64).fill(i));
        const doubled = await device.kernels.scale(small, 2);
        sum += (await doubled.read())[0]!;
        doubled.free();
      }
      expect(sum).toBe(2 * ((39 * 40) / 2));
      for (const t of [tensor, scaled, small]) t.free();
    }
  });

  it('the queue path models nothing: no direct writes, no ring bytes, no upload staging', async () => {
    const [queue, hostVisible] = devices as [GpuDevice, GpuDevice];
    const fresh = queue.empty([16], 'f32', 'fresh');
    expect(queue.writesDirectly((fresh as GpuTensor).buffer)).toBe(false);
    const big = queue.upload(pattern(DIRECT_WRITE_MAX_BYTES, 3), [DIRECT_WRITE_MAX_BYTES], 'big');
    (await queue.kernels.scale(big, 1)).free();
    queue.write(big, pattern(DIRECT_WRITE_MAX_BYTES, 4));
    expect(queue.uploadRingBytes).toBe(0);
    expect(queue.uploadStaging.createdCount).toBe(0);
    expectClose(await queue.read(big), pattern(DIRECT_WRITE_MAX_BYTES, 4), EXACT);
    const other = hostVisible.empty([16], 'f32', 'fresh');
    expect(hostVisible.writesDirectly((other as GpuTensor).buffer)).toBe(hostVisible.adapter.isSoftware);
    for (const t of [fresh, big, other]) t.free();
  });

  it('kernels over many batches read their own parameters on the queue path', async () => {
    const device = devices[0]!;
    const x = device.upload(new Float32Array(8).fill(1), [8], 'x');
    let t: Tensor = x;
    // More kernels than the parameter ring has slots, each with its own factor.
    for (let i = 0; i < 1100; i++) {
      const next = await device.kernels.scale(t, i % 2 === 0 ? 2 : 0.5);
      if (t !== x) t.free();
      t = next;
    }
    expectClose(await device.read(t), new Float32Array(8).fill(1), EXACT);
    t.free();
    x.free();
  });
});
