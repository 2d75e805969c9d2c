import { ParallelError } from '../errors.js';

export interface LedgerEntry {
  readonly label: string;
  readonly bytes: number;
}

/**
 * Counts the bytes a device holds against a budget. Every allocation asks here first, so a strategy that
 * does not fit fails before anything is allocated, naming the device and the numbers.
 */
export class MemoryLedger {
  readonly deviceName: string;
  readonly budgetBytes: number;
  private used = 0;
  private peak = 0;
  private nextHandle = 1;
  private readonly live = new Map<number, LedgerEntry>();

  constructor(deviceName: string, budgetBytes: number = Number.POSITIVE_INFINITY) {
    if (!(budgetBytes > 0)) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `memory budget must be a positive number of bytes, got ${budgetBytes}`,
        {
          where: deviceName,
        },
      );
    }
    this.deviceName = deviceName;
    this.budgetBytes = budgetBytes;
  }

  get usedBytes(): number {
    return this.used;
  }

  get peakBytes(): number {
    return this.peak;
  }

  get liveEntries(): readonly LedgerEntry[] {
    return [...this.live.values()];
  }

  /** Reserves bytes and returns a handle for `release`; throws MEMORY_BUDGET without reserving anything. */
  reserve(bytes: number, label: string): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new ParallelError('INVALID_ARGUMENT', `cannot reserve ${bytes} bytes for ${label}`, {
        where: this.deviceName,
      });
    }
    if (this.used + bytes > this.budgetBytes) {
      throw new ParallelError(
        'MEMORY_BUDGET',
        `${this.deviceName}: allocating ${bytes} bytes for '${label}' would exceed the budget ` +
          `(${this.used} bytes in use, budget ${this.budgetBytes} bytes)`,
        {
          where: this.deviceName,
          fix: 'raise the memory budget, shard the tensor over more devices, or use fewer microbatches in flight',
        },
      );
    }
    const handle = this.nextHandle++;
    this.live.set(handle, { label, bytes });
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return handle;
  }

  release(handle: number): void {
    const entry = this.live.get(handle);
    if (!entry) return;
    this.live.delete(handle);
    this.used -= entry.bytes;
  }

  resetPeak(): void {
    this.peak = this.used;
  }
}
