/** Dawn's upload ring (its DynamicUploader's ring buffer size), which writeBuffer copies go through. */
export const DAWN_UPLOAD_RING_BYTES = 4 * 1024 * 1024;

interface Request {
  readonly batch: number;
  readonly endOffset: number;
  readonly size: number;
}

/**
 * A model of Dawn's upload ring (its RingBufferAllocator), so that a write goes through `queue.writeBuffer`
 * only where Dawn will place it in the ring it has. A write that does not fit makes Dawn create another
 * ring buffer: fresh memory, which lavapipe page-faults (~1,000 faults, ~16 ms here, per 4 MiB), dropped
 * again once empty, so a workload that overflows keeps paying it. Byte counting is not enough: the ring
 * places a request after the last one, or at its start when the tail is too short, and counts the tail as
 * used; ReduceScatter's 2, 2 and 1.3 MiB chunks overflowed it with less than 4 MiB in flight.
 *
 * Requests are grouped in batches, one per submit that carries them (Dawn's pending serial); a batch is
 * released when its submit has completed, never before Dawn has reclaimed it, since Dawn reclaims on the
 * same completion, before it reports it.
 */
export class UploadRingModel {
  private readonly requests: Request[] = [];
  private usedStart = 0;
  private usedEnd = 0;
  private used = 0;
  private batch = 0;

  constructor(readonly capacity = DAWN_UPLOAD_RING_BYTES) {}

  /** Places `bytes` in the pending batch as Dawn would, or returns false where Dawn would need a new ring. */
  tryAllocate(bytes: number): boolean {
    if (this.used >= this.capacity || bytes > this.capacity - this.used) return false;
    let start: number;
    let size = bytes;
    if (this.usedStart <= this.usedEnd) {
      if (this.usedEnd + bytes <= this.capacity) start = this.usedEnd;
      else if (bytes <= this.usedStart) {
        start = 0;
        size = this.capacity - this.usedEnd + bytes; // the skipped tail counts as used
      } else return false;
    } else if (this.usedEnd + bytes <= this.usedStart) start = this.usedEnd;
    else return false;
    this.used += size;
    this.usedEnd = start + bytes;
    this.requests.push({ batch: this.batch, endOffset: this.usedEnd, size });
    return true;
  }

  /** Whether writes wait in the pending batch for a submit to carry them. */
  get hasPending(): boolean {
    return this.requests[this.requests.length - 1]?.batch === this.batch;
  }

  /** Closes the pending batch at a submit; returns its id, or null when it holds nothing. */
  seal(): number | null {
    return this.hasPending ? this.batch++ : null;
  }

  /** Frees every request of batches up to `batch`, as Dawn does once their submit has completed. */
  release(batch: number): void {
    while (this.requests.length > 0 && this.requests[0]!.batch <= batch) {
      const request = this.requests.shift()!;
      this.usedStart = request.endOffset;
      this.used -= request.size;
    }
  }

  /** Bytes the ring counts as taken, skipped tails included. */
  get usedBytes(): number {
    return this.used;
  }
}
