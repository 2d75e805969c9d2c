import type { GpuDevice } from '../runtime/webgpu/gpu-device.js';

/** Smallest staging buffer: below this, a mapAsync round trip costs the same whatever the size. */
export const MIN_STAGING_BYTES = 4096;

/** Size classes are powers of two so that a buffer fits many nearby sizes and reuse is likely. */
export function sizeClass(bytes: number): number {
  let size = MIN_STAGING_BYTES;
  while (size < bytes) size *= 2;
  return size;
}

interface Pooled {
  readonly buffer: GPUBuffer;
  readonly handle: number;
}

/**
 * MAP_READ | COPY_DST buffers of one device, kept and reused by size class: creating a buffer per transfer
 * costs an allocation and a page-fault storm each time. Every buffer is counted in the device's ledger
 * for as long as the pool keeps it, so staging shows up in the memory report.
 */
export class StagingPool {
  private readonly free = new Map<number, Pooled[]>();
  private readonly busy = new Map<GPUBuffer, Pooled>();
  private created = 0;

  constructor(private readonly device: GpuDevice) {}

  /** A buffer of at least `bytes`, not in use by anyone else until `release`. */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const pooled = this.free.get(size)?.pop() ?? this.create(size);
    this.busy.set(pooled.buffer, pooled);
    return pooled.buffer;
  }

  release(buffer: GPUBuffer): void {
    const pooled = this.busy.get(buffer);
    if (!pooled) return;
    this.busy.delete(buffer);
    const list = this.free.get(buffer.size) ?? [];
    list.push(pooled);
    this.free.set(buffer.size, list);
  }

  /** How many buffers this pool ever created: a test's proof that transfers reuse them. */
  get createdCount(): number {
    return this.created;
  }

  get heldBytes(): number {
    let bytes = 0;
    for (const list of this.free.values()) for (const p of list) bytes += p.buffer.size;
    for (const p of this.busy.values()) bytes += p.buffer.size;
    return bytes;
  }

  /** Returns every idle buffer to the driver and its bytes to the ledger. */
  trim(): void {
    for (const list of this.free.values()) for (const p of list) this.drop(p);
    this.free.clear();
  }

  destroy(): void {
    this.trim();
    for (const p of this.busy.values()) this.drop(p);
    this.busy.clear();
  }

  private create(size: number): Pooled {
    const handle = this.device.ledger.reserve(size, 'collective staging');
    try {
      const buffer = this.device.createBuffer({
        label: `${this.device.name}/staging/${size}`,
        size,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      this.created++;
      return { buffer, handle };
    } catch (error) {
      this.device.ledger.release(handle);
      throw error;
    }
  }

  private drop(p: Pooled): void {
    if (!this.device.isDestroyed) p.buffer.destroy();
    this.device.ledger.release(p.handle);
  }
}
