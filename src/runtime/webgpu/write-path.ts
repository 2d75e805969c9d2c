import type { BufferUse } from './buffer-uses.js';

/**
 * How host writes reach a device's buffers: the one place that knows what the WebGPU implementation does
 * with `queue.writeBuffer`, chosen once when the device opens. The device orders writes against its own
 * pending kernels before calling in (a write goes to the queue ahead of any later submit), and every submit
 * reports here what it touched and when it completed, since where a write may go can depend on both.
 */
export interface WritePath {
  /** Whether `queue.writeBuffer` into the buffer now lands in its memory at once, with no copy queued. */
  writesDirectly(buffer: GPUBuffer): boolean;
  /** Writes `bytes` into the buffer at `byteOffset`; no encoded and unsubmitted work uses the buffer. */
  write(buffer: GPUBuffer, byteOffset: number, bytes: Uint8Array, label: string): void;
  /**
   * Writes a range of the kernel-parameter ring ahead of the batch that reads it. Commands that must run
   * before the batch go into `before`; buffers to destroy once the submit is made, into `retired`.
   */
  writeParams(
    ring: GPUBuffer,
    at: number,
    bytes: Uint8Array,
    before: GPUCommandBuffer[],
    retired: GPUBuffer[],
  ): void;
  /** A submit touching `uses` was made; returns its serial. */
  submitted(uses: readonly BufferUse[]): number;
  /** Closes the writes that submit carries; a token for `released`, or null when there were none. */
  seal(): number | null;
  /** The submit that carried the sealed writes has completed (or failed): their staging is free. */
  released(token: number): void;
  /** Work up to the submit `serial` has completed. */
  completedThrough(serial: number): void;
  /** Whether writes wait for a submit to carry them (a device that only receives writes must make one). */
  readonly hasPendingWrites: boolean;
  /** Bytes of the implementation's own staging that writes not yet finished hold, where it is modelled. */
  readonly stagedBytes: number;
}

/**
 * The plain path, for a GPU whose memory the host does not see and for a browser: every write is one
 * `queue.writeBuffer`, which the implementation stages and orders itself. Nothing to model or release.
 */
export class QueueWritePath implements WritePath {
  private serial = 0;
  /** Writes made since the last submit, which the implementation may hold until one. */
  private pending = false;

  constructor(private readonly queue: GPUQueue) {}

  writesDirectly(): boolean {
    return false;
  }

  write(buffer: GPUBuffer, byteOffset: number, bytes: Uint8Array): void {
    this.queue.writeBuffer(buffer, byteOffset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pending = true;
  }

  writeParams(ring: GPUBuffer, at: number, bytes: Uint8Array): void {
    this.queue.writeBuffer(ring, at, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  submitted(): number {
    return ++this.serial;
  }

  seal(): null {
    this.pending = false;
    return null;
  }

  released(): void {}

  completedThrough(): void {}

  get hasPendingWrites(): boolean {
    return this.pending;
  }

  get stagedBytes(): number {
    return 0;
  }
}
