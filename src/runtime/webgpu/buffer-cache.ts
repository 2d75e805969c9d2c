import type { StagingOwner } from './staging-pool.js';

/**
 * Most bytes a device keeps in freed buffers; past it, the least recently freed go back to the driver.
 * Large buffers are kept because lavapipe page-faults fresh memory (a kernel filling a fresh 4 MiB buffer
 * ~13 ms, a reused one ~1.8 ms; 16 MiB ~59 against ~12 ms reused and cleared); small ones because a kernel
 * run again on the same buffers reuses its bind group (see BindGroupCache), and a fresh buffer costs a
 * createBuffer (~6 µs) besides.
 */
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
  /** Every kept buffer, least recently freed first (a Set keeps insertion order). */
  private readonly age = new Set<Cached>();
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
    this.age.delete(entry);
    this.bytes -= size;
    this.device.ledger.release(entry.handle);
    entry.buffer.label = label;
    if (!clear) return entry.buffer;
    this.device.clearBuffer(entry.buffer);
    return entry.buffer;
  }

  /** Keeps a freed buffer, making room by destroying the least recently freed; past the cap, destroys it. */
  give(buffer: GPUBuffer): void {
    const size = buffer.size;
    if (this.device.isDestroyed) return;
    if (size > this.maxBytes) {
      this.device.retire(buffer);
      return;
    }
    while (this.bytes + size > this.maxBytes) this.drop(this.age.values().next().value!);
    // The freed tensor's own bytes were released just before, so this reservation cannot exceed the budget.
    const entry = { buffer, handle: this.device.ledger.reserve(size, 'tensor cache') };
    const list = this.kept.get(size) ?? [];
    list.push(entry);
    this.kept.set(size, list);
    this.age.add(entry);
    this.bytes += size;
  }

  private drop(entry: Cached): void {
    const size = entry.buffer.size;
    const list = this.kept.get(size)!;
    list.splice(list.indexOf(entry), 1);
    this.age.delete(entry);
    this.bytes -= size;
    this.device.ledger.release(entry.handle);
    this.device.retire(entry.buffer);
  }

  get heldBytes(): number {
    return this.bytes;
  }

  /** Destroys every kept buffer and returns its bytes to the ledger. */
  trim(): void {
    for (const list of this.kept.values()) {
      for (const entry of list) {
        if (!this.device.isDestroyed) this.device.retire(entry.buffer);
        this.device.ledger.release(entry.handle);
      }
    }
    this.kept.clear();
    this.age.clear();
    this.bytes = 0;
  }
}
