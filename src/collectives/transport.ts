import type { Device } from '../runtime/device.js';
import type { HostArray, Tensor } from '../runtime/tensor.js';
import type { Run, Segment } from './box.js';

/** Host memory holding what a read brought back; valid until `release` (it may be a mapped staging buffer). */
export interface HostLease {
  /** The runs read, packed one after another in the order asked for, typed as the tensor. */
  readonly data: HostArray;
  release(): void;
}

/**
 * How bytes get in and out of one kind of device. Collectives are written against this only, so a WebGPU
 * device, the CPU reference and gpu.js devices (host memory) all run the same collective code.
 */
export interface Transport {
  readonly device: Device;
  /** Starts copying the runs of `tensor` to the host at once; several reads on several devices overlap. */
  read(tensor: Tensor, runs: readonly Run[]): Promise<HostLease>;
  /** Queues a write of host values at an element offset; `data` may be reused as soon as this returns. */
  write(tensor: Tensor, data: HostArray, elementOffset: number): void;
  /**
   * Whether writes into `tensor` now go straight into its memory, with no staging or queue copy between
   * (how large a chunk a stream may write at once depends on it).
   */
  writesDirectly(tensor: Tensor): boolean;
  /**
   * Whether a `copyWithin` into `tensor` would end its direct writes: on Dawn one device copy into a buffer
   * sends every later write to it through the upload ring (see BufferUses), so rows the host could write
   * directly are cheaper crossing the host than copied beside writes that would then take the ring.
   */
  copyEndsDirectWrites(tensor: Tensor): boolean;
  /** Copies segments between two tensors of this device without passing through the host. */
  copyWithin(src: Tensor, dst: Tensor, segments: readonly Segment[]): void;
  /**
   * Starts the writes the device still holds: a WebGPU device keeps queued writes in its driver's upload
   * ring until its next submit, and a device that only receives would otherwise fill that ring.
   */
  flush(): void;
  /** Returns pooled resources to the device. */
  destroy(): void;
}
