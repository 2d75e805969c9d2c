import type { HostArray, Tensor } from '../runtime/tensor.js';
import type { GpuDevice } from '../runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../runtime/webgpu/gpu-tensor.js';
import type { Run, Segment } from './box.js';
import { StagingPool } from './staging-pool.js';
import type { HostLease, Transport } from './transport.js';

const BYTES = 4;

function bufferOf(device: GpuDevice, tensor: Tensor): GPUBuffer {
  tensor.assertLive('collective');
  if (tensor.device !== device)
    throw new Error(`transport of ${device.name} got a tensor of ${tensor.device.name}`);
  return (tensor as GpuTensor).buffer;
}

/**
 * A WebGPU device: reads go device buffer -> pooled MAP_READ staging buffer (one copy per run, one submit)
 * -> mapped host memory, handed out without a further copy; writes go through `queue.writeBuffer`, which
 * copies the host data at call time, so the mapped range can be unmapped right after.
 */
export class WebGpuTransport implements Transport {
  readonly pool: StagingPool;

  constructor(readonly device: GpuDevice) {
    this.pool = new StagingPool(device);
  }

  async read(tensor: Tensor, runs: readonly Run[]): Promise<HostLease> {
    const source = bufferOf(this.device, tensor);
    const total = runs.reduce((n, r) => n + r.count, 0);
    const bytes = total * BYTES;
    const staging = this.pool.acquire(bytes);
    try {
      const encoder = this.device.gpu.createCommandEncoder({ label: `collective read ${tensor.label}` });
      let at = 0;
      for (const run of runs) {
        encoder.copyBufferToBuffer(source, run.offset * BYTES, staging, at, run.count * BYTES);
        at += run.count * BYTES;
      }
      this.device.gpu.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      this.device.throwIfFailed();
    } catch (error) {
      this.pool.release(staging);
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
        this.pool.release(staging);
      },
    };
  }

  write(tensor: Tensor, data: HostArray, elementOffset: number): void {
    if (data.length === 0) return;
    this.device.gpu.queue.writeBuffer(
      bufferOf(this.device, tensor),
      elementOffset * BYTES,
      data.buffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  copyWithin(src: Tensor, dst: Tensor, segments: readonly Segment[]): void {
    if (segments.length === 0) return;
    const from = bufferOf(this.device, src);
    const to = bufferOf(this.device, dst);
    const encoder = this.device.gpu.createCommandEncoder({ label: `collective local copy ${src.label}` });
    for (const s of segments)
      encoder.copyBufferToBuffer(from, s.srcOffset * BYTES, to, s.dstOffset * BYTES, s.count * BYTES);
    this.device.gpu.queue.submit([encoder.finish()]);
  }

  destroy(): void {
    this.pool.destroy();
  }
}
