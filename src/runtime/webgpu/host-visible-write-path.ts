import { type BufferUse, BufferUses } from './buffer-uses.js';
import type { StagingPool } from './staging-pool.js';
import { UploadRingModel } from './upload-ring.js';
import type { WritePath } from './write-path.js';

/**
 * Where Dawn writes a buffer directly (a CPU adapter, a buffer the GPU never wrote and no queued work uses:
 * see BufferUses), `queue.writeBuffer` is one memcpy into the buffer's memory, whatever the size, and is
 * always taken (`upload` into a fresh buffer is that case). Elsewhere it is used only where the write fits
 * Dawn's 4 MiB upload ring: a write that does not fit what the queue has not yet consumed gets freshly
 * allocated staging memory, which lavapipe page-faults on every write; larger writes, and writes the ring
 * has no room for, go through the device's own upload buffers, which are reused. Within the ring,
 * writeBuffer is the cheaper path (no encoder, submit and re-map). Single writes are held to half the ring;
 * whether one goes into the ring at all is Dawn's own placement, modelled by `UploadRingModel`, whose
 * batches are released when the submit carrying them completes (Dawn holds a writeBuffer's copy until the
 * next submit, and `onSubmittedWorkDone` covers submitted work only). Writes ride on the next submit
 * rather than an empty one of their own. The figures behind each choice: bench/RESULTS.md, "Dispatch
 * batching and fusion", write paths.
 */
export const DIRECT_WRITE_MAX_BYTES = 2 * 1024 * 1024;

/** What the path needs of its device: its queue, its upload buffers, and its one way to submit. */
export interface HostVisibleWriteOwner {
  readonly gpu: GPUDevice;
  readonly uploadStaging: StagingPool;
  submit(commands: GPUCommandBuffer[], uses?: readonly BufferUse[]): number;
}

/**
 * Dawn on a CPU adapter (lavapipe, SwiftShader), whose buffers live in memory the host sees: Dawn copies a
 * write straight into a buffer where it can (BufferUses has its rule), else through its upload ring, whose
 * overflow costs fresh, page-faulted staging; writes the ring would not hold go through the device's pooled
 * upload buffers instead (DIRECT_WRITE_MAX_BYTES says why and what it measured).
 */
export class HostVisibleWritePath implements WritePath {
  /** Where Dawn has placed this device's `queue.writeBuffer` copies that the queue has not finished. */
  private readonly ring = new UploadRingModel();
  /** Which buffers the GPU uses and has written: whether Dawn writes one directly or through its ring. */
  private readonly uses = new BufferUses();

  constructor(private readonly owner: HostVisibleWriteOwner) {}

  writesDirectly(buffer: GPUBuffer): boolean {
    return this.uses.writesDirectly(buffer);
  }

  write(buffer: GPUBuffer, byteOffset: number, bytes: Uint8Array, label: string): void {
    const queue = this.owner.gpu.queue;
    if (this.uses.writesDirectly(buffer)) {
      // Dawn copies it straight into the buffer's memory, whatever the size: no ring, no copy on the queue.
      queue.writeBuffer(buffer, byteOffset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return;
    }
    if (bytes.byteLength <= DIRECT_WRITE_MAX_BYTES && this.ring.tryAllocate(bytes.byteLength)) {
      queue.writeBuffer(buffer, byteOffset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.uses.writtenByNextSubmit(buffer);
      return;
    }
    const staging = this.owner.uploadStaging.acquire(bytes.byteLength);
    new Uint8Array(staging.getMappedRange(0, bytes.byteLength)).set(bytes);
    staging.unmap();
    const encoder = this.owner.gpu.createCommandEncoder({ label: `write ${label}` });
    encoder.copyBufferToBuffer(staging, 0, buffer, byteOffset, bytes.byteLength);
    this.owner.submit([encoder.finish()], [{ buffer, writes: true }]);
    this.owner.uploadStaging.release(staging);
  }

  /**
   * Other batches in flight read the ring, so Dawn takes the write through its upload ring (a copy on
   * the queue, in order before this batch); where the ring model has no room, a staging copy ahead of the
   * batch does the same.
   */
  writeParams(
    ring: GPUBuffer,
    at: number,
    bytes: Uint8Array,
    before: GPUCommandBuffer[],
    retired: GPUBuffer[],
  ): void {
    const gpu = this.owner.gpu;
    if (this.uses.writesDirectly(ring) || this.ring.tryAllocate(bytes.byteLength)) {
      gpu.queue.writeBuffer(ring, at, bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return;
    }
    const staging = gpu.createBuffer({
      size: bytes.byteLength,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    const encoder = gpu.createCommandEncoder({ label: 'kernel params' });
    encoder.copyBufferToBuffer(staging, 0, ring, at, bytes.byteLength);
    before.push(encoder.finish());
    retired.push(staging);
  }

  submitted(uses: readonly BufferUse[]): number {
    return this.uses.submit(uses);
  }

  seal(): number | null {
    return this.ring.seal();
  }

  released(token: number): void {
    this.ring.release(token);
  }

  completedThrough(serial: number): void {
    this.uses.completedThrough(serial);
  }

  get hasPendingWrites(): boolean {
    return this.ring.hasPending;
  }

  get stagedBytes(): number {
    return this.ring.usedBytes;
  }
}
