import type { MemoryLedger } from '../memory-ledger.js';
import type { BufferUse } from './buffer-uses.js';

/** Smallest staging buffer: below this, a map round trip costs the same whatever the size. */
export const MIN_STAGING_BYTES = 4096;

/**
 * Four size classes per power of two (4, 5, 6, 7 x 2^k): a buffer still fits many nearby sizes, so reuse is
 * likely, while a class adds at most a quarter to what was asked, where a power of two could nearly double
 * it, which decides whether a read fits a tight memory budget.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_STAGING_BYTES) return MIN_STAGING_BYTES;
  const step = 2 ** (Math.floor(Math.log2(bytes - 1)) - 2);
  return Math.ceil(bytes / step) * step;
}

/**
 * Most bytes a pool keeps in idle buffers, as the tensor cache; a buffer released past it goes back to the
 * driver. Unbounded, a sweep of large transfers left hundreds of MiB behind (a 64 MiB AllReduce summed on
 * the devices: 230 MiB of staging a device; the host's next 16 MiB AllReduce ran 10.4 -> 12.7 ms with that
 * and 224 MiB of cached tensors held, 9.1 ms once all was handed back, on the 2-core dev VM). A cap of 64 MiB
 * made alternating 2 MiB and 64 MiB writes recreate their buffers every time (~200 ms of page faults).
 */
export const STAGING_IDLE_MAX_BYTES = 256 * 1024 * 1024;

/**
 * `readback`: MAP_READ | COPY_DST buffers, handed out unmapped; the caller copies into one, maps it, reads,
 * unmaps and releases it. `upload`: MAP_WRITE | COPY_SRC buffers, handed out mapped for writing; the caller
 * fills one, unmaps it, submits a copy out of it and releases it, and the pool maps it again once the
 * queue is done with it.
 */
export type StagingKind = 'readback' | 'upload';

/** What a pool needs of its device (the GpuDevice itself; narrowed so that the pool can be tested alone). */
export interface StagingOwner {
  readonly name: string;
  readonly gpu: GPUDevice;
  readonly ledger: MemoryLedger;
  /** Reserves ledger bytes, first handing back what the device only keeps for reuse if over budget. */
  reserve(bytes: number, label: string): number;
  /** Whether the host writes the buffer in place (see `GpuDevice.writesDirectly`). */
  writesDirectly(buffer: GPUBuffer): boolean;
  /** Submits work to the device's queue, naming the buffers it touches (see `GpuDevice.submit`). */
  submit(commands: GPUCommandBuffer[], uses?: readonly BufferUse[]): number;
  /** Clears a buffer in order with the kernels queued before (see `GpuDevice.clearBuffer`). */
  clearBuffer(buffer: GPUBuffer): void;
  /** Destroys a buffer once no pending work uses it (see `GpuDevice.retire`). */
  retire(buffer: GPUBuffer): void;
  readonly isDestroyed: boolean;
}

interface Pooled {
  readonly buffer: GPUBuffer;
  readonly handle: number;
}

/**
 * Staging buffers of one device, kept and reused by size class. A fresh buffer costs an allocation and a
 * page-fault storm on first touch (on lavapipe ~50 ms for 16 MiB); a reused one costs neither. Every buffer
 * is counted in the device's ledger for as long as the pool keeps it, so staging shows in the memory report.
 */
export class StagingPool {
  private readonly free = new Map<number, Pooled[]>();
  private readonly busy = new Map<GPUBuffer, Pooled>();
  private readonly remapping = new Set<Promise<void>>();
  private created = 0;

  constructor(
    private readonly device: StagingOwner,
    readonly kind: StagingKind,
    readonly maxIdleBytes = STAGING_IDLE_MAX_BYTES,
  ) {}

  /** A buffer of at least `bytes`, not in use by anyone else until `release`; an upload one comes mapped. */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const pooled = this.free.get(size)?.pop() ?? this.create(size);
    this.busy.set(pooled.buffer, pooled);
    return pooled.buffer;
  }

  /**
   * Gives a buffer back: a readback one must be unmapped already; an upload one must have had its copy
   * submitted, and returns to the free list only when mapped again (so `acquire` never waits).
   */
  release(buffer: GPUBuffer): void {
    const pooled = this.busy.get(buffer);
    if (!pooled) return;
    if (this.kind === 'readback') {
      this.busy.delete(buffer);
      this.keep(pooled);
      return;
    }
    const remap = buffer.mapAsync(GPUMapMode.WRITE).then(
      () => {
        // Destroyed while the map was pending: it is no longer ours to keep.
        if (this.busy.delete(buffer)) this.keep(pooled);
      },
      () => {
        if (this.busy.delete(buffer)) this.drop(pooled);
      },
    );
    this.remapping.add(remap);
    void remap.finally(() => this.remapping.delete(remap));
  }

  /** Resolves once every released upload buffer is mapped again (back in the free list, or dropped). */
  async settled(): Promise<void> {
    while (this.remapping.size > 0) await Promise.all(this.remapping);
  }

  /** How many buffers this pool ever created: a test's proof that transfers reuse them. */
  get createdCount(): number {
    return this.created;
  }

  get heldBytes(): number {
    let bytes = this.idleBytes;
    for (const p of this.busy.values()) bytes += p.buffer.size;
    return bytes;
  }

  /** Bytes in buffers nobody holds now: what `trim` would hand back. */
  get idleBytes(): number {
    let bytes = 0;
    for (const list of this.free.values()) for (const p of list) bytes += p.buffer.size;
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

  private keep(pooled: Pooled): void {
    if (this.idleBytes + pooled.buffer.size > this.maxIdleBytes) {
      this.drop(pooled);
      return;
    }
    const list = this.free.get(pooled.buffer.size) ?? [];
    list.push(pooled);
    this.free.set(pooled.buffer.size, list);
  }

  private create(size: number): Pooled {
    const handle = this.device.reserve(size, `${this.kind} staging`);
    try {
      const upload = this.kind === 'upload';
      const buffer = this.device.gpu.createBuffer({
        label: `${this.device.name}/${this.kind}-staging/${size}`,
        size,
        usage: upload
          ? GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC
          : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        mappedAtCreation: upload,
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
