import type { HostArray, Tensor } from '../runtime/tensor.js';
import type { GpuDevice } from '../runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../runtime/webgpu/gpu-tensor.js';
import type { Run, Segment } from './box.js';
import type { HostLease, Transport } from './transport.js';

const BYTES = 4;

function bufferOf(device: GpuDevice, tensor: Tensor): GPUBuffer {
  tensor.assertLive('collective');
  if (tensor.device !== device)
    throw new Error(`transport of ${device.name} got a tensor of ${tensor.device.name}`);
  return (tensor as GpuTensor).buffer;
}

/**
 * A WebGPU device: reads go device buffer -> the device's pooled MAP_READ staging (one copy per run, one
 * submit) -> mapped host memory, handed out without a further copy; writes go through `GpuDevice.write`,
 * which copies the host data before it returns, so a mapped source range can be unmapped right after.
 */
export class WebGpuTransport implements Transport {
  constructor(readonly device: GpuDevice) {}

  async read(tensor: Tensor, runs: readonly Run[]): Promise<HostLease> {
    const source = bufferOf(this.device, tensor);
    const total = runs.reduce((n, r) => n + r.count, 0);
    const bytes = total * BYTES;
    const pool = this.device.readStaging;
    const staging = pool.acquire(bytes);
    try {
      const encoder = this.device.gpu.createCommandEncoder({ label: `collective read ${tensor.label}` });
      let at = 0;
      for (const run of runs) {
        encoder.copyBufferToBuffer(source, run.offset * BYTES, staging, at, run.count * BYTES);
        at += run.count * BYTES;
      }
      this.device.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      this.device.throwIfFailed();
    } catch (error) {
      if (staging.mapState !== 'unmapped') staging.unmap();
      pool.release(staging);
      throw error;
    }
    const range = staging.getMappedRange(0, bytes);
    const data: HostArray = tensor.dtype === 'u32' ? new Uint32Array(range) : new Float32Array(range);
    let released = false;
    return {
      data,
      release: () => {
        if (released) return;
        released = true;
        staging.unmap();
        pool.release(staging);
      },
    };
  }

  write(tensor: Tensor, data: HostArray, elementOffset: number): void {
    this.device.write(tensor, data, elementOffset);
  }

  copyWithin(src: Tensor, dst: Tensor, segments: readonly Segment[]): void {
    if (segments.length === 0) return;
    const from = bufferOf(this.device, src);
    const to = bufferOf(this.device, dst);
    const encoder = this.device.gpu.createCommandEncoder({ label: `collective local copy ${src.label}` });
    for (const s of segments)
      encoder.copyBufferToBuffer(from, s.srcOffset * BYTES, to, s.dstOffset * BYTES, s.count * BYTES);
    this.device.submit([encoder.finish()]);
  }

  /** The staging buffers belong to the device; idle ones are handed back to the driver. */
  destroy(): void {
    this.device.readStaging.trim();
    this.device.uploadStaging.trim();
  }
}
