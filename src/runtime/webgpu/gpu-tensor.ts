import type { DType, Shape } from '../tensor.js';
import { BYTES_PER_ELEMENT, elementCount, Tensor } from '../tensor.js';
import type { GpuDevice } from './gpu-device.js';

export const TENSOR_USAGE = 0x0080 /* STORAGE */ | 0x0004 /* COPY_SRC */ | 0x0008; /* COPY_DST */

/** WebGPU wants buffer sizes in multiples of 4 bytes and never zero. */
export function paddedBytes(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/** A tensor in a labelled storage buffer on one WebGPU device, counted in that device's ledger. */
export class GpuTensor extends Tensor {
  readonly device: GpuDevice;
  readonly buffer: GPUBuffer;
  /** Whether the buffer came from the device's cache of freed buffers rather than the driver. */
  readonly recycled: boolean;
  private readonly handle: number;

  /** `overwritten`: the caller writes every element first, so a reused buffer needs no clearing. */
  constructor(device: GpuDevice, shape: Shape, dtype: DType, label: string, overwritten = false) {
    super(shape, dtype, label);
    this.device = device;
    const bytes = paddedBytes(elementCount(shape) * BYTES_PER_ELEMENT[dtype]);
    // Taken before reserving: the kept buffer's ledger bytes are released first, so a reused buffer is never
    // counted twice in the peak.
    const kept = device.tensorCache.take(bytes, label, !overwritten);
    this.recycled = kept !== undefined;
    // The ledger answers before the driver, so a tensor over budget never reaches it.
    try {
      this.handle = device.reserve(bytes, label);
    } catch (error) {
      if (kept) device.tensorCache.give(kept);
      throw error;
    }
    try {
      this.buffer = kept ?? device.createBuffer({ label, size: bytes, usage: TENSOR_USAGE });
    } catch (error) {
      device.ledger.release(this.handle);
      throw error;
    }
  }

  protected release(): void {
    this.device.ledger.release(this.handle);
    this.device.tensorCache.give(this.buffer);
  }

  protected viewAs(shape: Shape, label: string): Tensor {
    return new GpuTensorView(this, shape, label);
  }
}

/** Another shape over a GpuTensor's buffer: holds no bytes of its own, so its free releases nothing. */
class GpuTensorView extends Tensor {
  readonly device: GpuDevice;
  readonly buffer: GPUBuffer;
  readonly recycled = false;

  constructor(
    private readonly base: GpuTensor,
    shape: Shape,
    label: string,
  ) {
    super(shape, base.dtype, label);
    this.device = base.device;
    this.buffer = base.buffer;
  }

  protected override get viewed(): Tensor {
    return this.base;
  }

  protected release(): void {}

  protected viewAs(shape: Shape, label: string): Tensor {
    return new GpuTensorView(this.base, shape, label);
  }
}
