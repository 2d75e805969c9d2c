import { isParallelError } from '../../errors.js';
import { MemoryLedger } from '../memory-ledger.js';
import { BufferCache } from './buffer-cache.js';
import { type StagingOwner, StagingPool } from './staging-pool.js';

/**
 * A device's memory as the library counts it: the ledger every buffer is reserved in before the driver
 * sees it, and the buffers kept for reuse (freed tensors, read and upload staging), which are handed back
 * first when a reservation would go over the budget.
 */
export class DeviceAllocation {
  readonly ledger: MemoryLedger;
  /** Pooled MAP_READ buffers for reads back to the host (collectives lease them too). */
  readonly readStaging: StagingPool;
  /** Pooled MAP_WRITE buffers for large writes into tensors. */
  readonly uploadStaging: StagingPool;
  /** Freed tensor buffers kept for the next tensor of the same size. */
  readonly tensorCache: BufferCache;

  /** `owner` is the device the pools allocate on and submit to; its ledger is this one. */
  constructor(owner: StagingOwner, name: string, budgetBytes: number | undefined) {
    this.ledger = new MemoryLedger(name, budgetBytes);
    this.readStaging = new StagingPool(owner, 'readback');
    this.uploadStaging = new StagingPool(owner, 'upload');
    this.tensorCache = new BufferCache(owner);
  }

  /**
   * Reserves ledger bytes for a buffer. Over budget, the bytes merely kept for reuse are handed back
   * first, so caching never turns a fitting run into MEMORY_BUDGET.
   */
  reserve(bytes: number, label: string): number {
    try {
      return this.ledger.reserve(bytes, label);
    } catch (error) {
      if (!isParallelError(error, 'MEMORY_BUDGET') || this.releaseCached() === 0) throw error;
      return this.ledger.reserve(bytes, label);
    }
  }

  /** Hands every kept buffer back to the driver; returns the bytes they held. */
  releaseCached(): number {
    const kept = this.tensorCache.heldBytes + this.readStaging.idleBytes + this.uploadStaging.idleBytes;
    this.tensorCache.trim();
    this.readStaging.trim();
    this.uploadStaging.trim();
    return kept;
  }

  destroy(): void {
    this.readStaging.destroy();
    this.uploadStaging.destroy();
    this.tensorCache.trim();
  }
}
