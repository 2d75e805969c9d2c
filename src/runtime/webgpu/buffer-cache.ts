import type { StagingOwner } from './staging-pool.js';

/**
 * Smallest freed tensor buffer worth keeping. On lavapipe a kernel filling a fresh 4 MiB buffer took ~13 ms
 * (page faults) against ~1.8 ms for a reused one, and 16 MiB ~59 ms against ~12 ms reused and cleared;
 * at 1-2 MiB fresh and reused cost about the same (the allocator recycles small blocks itself).
 */
export const CACHE_MIN_BYTES = 2 * 1024 * 1024;

/** Most bytes a device keeps in freed buffers; past it, freed buffers go back to the driver. */
export const CACHE_MAX_BYTES = 256 * 1024 * 1024;

interface Cached {
  readonly buffer: GPUBuffer;
  readonly handle: number;
}

/**
 * Freed tensor buffers of one device, kept by exact size for the next tensor of that size (a caching
 * allocator, as PyTorch keeps for CUDA): activations and collective temporaries come back in the same sizes
 * every microbatch. Reuse is safe without waiting: the old and the new owner's work go through the same
 * queue, in order. A reused buffer is cleared first, so `empty` still returns zeros, as WebGPU promises.
 * Kept bytes stay in the device's ledger (labelled `tensor cache`) and are handed back when a reservation
 * would otherwise exceed the budget.
 */
export class BufferCache {
  private readonly kept = new Map<number, Cached[]>();
  private bytes = 0;

  constructor(
    private readonly device: StagingOwner,
    readonly maxBytes = CACHE_MAX_BYTES,
  ) {}

  /**
   * A kept buffer of exactly `size` bytes, relabelled, or undefined. Cleared, unless the caller will
   * overwrite it all. Buffers the host can still write in place (see BufferUses) go to such callers
   * first: a clear is a GPU write, which ends that for good, so a clear takes one that has lost it where
   * there is one.
   */
  take(size: number, label: string, clear = true): GPUBuffer | undefined {
    const list = this.kept.get(size);
    if (!list?.length) return undefined;
    const preferred = list.findIndex((e) => this.device.writesDirectly(e.buffer) !== clear);
    const entry = preferred >= 0 ? list.splice(preferred, 1)[0]! : list.pop()!;
    this.bytes -= size;
    this.device.ledger.release(entry.handle);
    entry.buffer.label = label;
    if (!clear) return entry.buffer;
    const encoder = this.device.gpu.createCommandEncoder({ label: `clear ${label}` });
    encoder.clearBuffer(entry.buffer);
    this.device.submit([encoder.finish()], [{ buffer: entry.buffer, writes: true }]);
    return entry.buffer;
  }

  /** Keeps a freed buffer if it is large enough and fits; otherwise destroys it. */
  give(buffer: GPUBuffer): void {
    const size = buffer.size;
    if (this.device.isDestroyed || size < CACHE_MIN_BYTES || this.bytes + size > this.maxBytes) {
      buffer.destroy();
      return;
    }
    // The freed tensor's own bytes were released just before, so this reservation cannot exceed the budget.
    const handle = this.device.ledger.reserve(size, 'tensor cache');
    const list = this.kept.get(size) ?? [];
    list.push({ buffer, handle });
    this.kept.set(size, list);
    this.bytes += size;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  /** Destroys every kept buffer and returns its bytes to the ledger. */
  trim(): void {
    for (const list of this.kept.values()) {
      for (const entry of list) {
        if (!this.device.isDestroyed) entry.buffer.destroy();
        this.device.ledger.release(entry.handle);
      }
    }
    this.kept.clear();
    this.bytes = 0;
  }
}
