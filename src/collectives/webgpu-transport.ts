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
 * submit) -> mapped host memory, handed out without a further copy (`GpuDevice.readMapped`); writes go
 * through `GpuDevice.write`, which copies the host data before it returns, so a mapped source range can be
 * unmapped right after.
 */
export class WebGpuTransport implements Transport {
  constructor(readonly device: GpuDevice) {}

  read(tensor: Tensor, runs: readonly Run[]): Promise<HostLease> {
    return this.device.readMapped(tensor, runs, 'collective read');
  }

  write(tensor: Tensor, data: HostArray, elementOffset: number): void {
    this.device.write(tensor, data, elementOffset);
  }

  writesDirectly(tensor: Tensor): boolean {
    return this.device.writesDirectly(bufferOf(this.device, tensor));
  }

  copyEndsDirectWrites(tensor: Tensor): boolean {
    return this.writesDirectly(tensor);
  }

  copyWithin(src: Tensor, dst: Tensor, all: readonly Segment[]): void {
    const segments = all.filter((s) => s.count > 0);
    if (segments.length === 0) return;
    const from = bufferOf(this.device, src);
    const to = bufferOf(this.device, dst);
    this.device.copyBuffer(
      from,
      to,
      segments.map((s) => ({
        srcByte: s.srcOffset * BYTES,
        dstByte: s.dstOffset * BYTES,
        bytes: s.count * BYTES,
      })),
    );
  }

  flush(): void {
    this.device.flushWrites();
  }

  /** The staging buffers belong to the device; idle ones are handed back to the driver. */
  destroy(): void {
    this.device.readStaging.trim();
    this.device.uploadStaging.trim();
  }
}
