import type { KernelSpan } from '../device.js';
import { BATCH_MAX_PASSES } from './command-batch.js';

const PAIRS_PER_SET = 256;

interface Pending {
  readonly readback: GPUBuffer;
  readonly entries: readonly { label: string; tag: string; hostSubmitNs: number }[];
}

/**
 * The offset that puts device ticks on the host clock, from one batch of passes: a pass cannot start
 * before the host submitted it, so the smallest offset consistent with every submit time is the alignment
 * (exact for the pass the device started soonest). Each submit time must be taken before the submit call:
 * taken after it, one call that returned late raises the bound for the whole batch, and every span lands
 * late, some after the host had already seen their results. In the seed-fits run on the 2-core dev VM
 * (lavapipe), 29-41 of 504 submits returned over 1 ms after the call, the slowest 6-10 ms; the report then
 * gave transfers of 1-6 MiB 0 ms of moving time.
 */
export function hostOffsetNs(submitNs: readonly number[], startTicks: readonly number[]): number {
  let offset = Number.NEGATIVE_INFINITY;
  submitNs.forEach((submit, i) => {
    offset = Math.max(offset, submit - startTicks[i]!);
  });
  return offset;
}

/**
 * Records a begin/end timestamp pair around each profiled compute pass, and turns them into spans on the
 * host clock, aligned per batch by `hostOffsetNs`.
 */
export class TimestampProfiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private entries: { label: string; tag: string; hostSubmitNs: number }[] = [];
  private pending: Pending[] = [];

  constructor(
    private readonly device: GPUDevice,
    label: string,
  ) {
    this.querySet = device.createQuerySet({
      label: `${label}/timestamps`,
      type: 'timestamp',
      count: PAIRS_PER_SET * 2,
    });
    this.resolveBuffer = device.createBuffer({
      label: `${label}/timestamps-resolve`,
      size: PAIRS_PER_SET * 16,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** The timestampWrites for the next pass. */
  nextPass(label: string, tag: string): GPUComputePassTimestampWrites {
    const pair = this.entries.length;
    this.entries.push({ label, tag, hostSubmitNs: 0 });
    return {
      querySet: this.querySet,
      beginningOfPassWriteIndex: pair * 2,
      endOfPassWriteIndex: pair * 2 + 1,
    };
  }

  /**
   * Call right after a submit carrying passes, with the host time taken just before it: every pass not yet
   * submitted was in it. Resolves the set once another full batch might not fit it.
   */
  submitted(hostSubmitNs: number): void {
    for (let i = this.entries.length - 1; i >= 0 && this.entries[i]!.hostSubmitNs === 0; i--) {
      this.entries[i]!.hostSubmitNs = hostSubmitNs;
    }
    if (this.entries.length > PAIRS_PER_SET - BATCH_MAX_PASSES) this.flush();
  }

  /** Queues the resolve of every recorded pair; the query set can be reused right after. */
  private flush(): void {
    if (this.entries.length === 0) return;
    const bytes = this.entries.length * 16;
    const readback = this.device.createBuffer({
      label: 'timestamps-readback',
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.device.createCommandEncoder({ label: 'timestamps-resolve' });
    encoder.resolveQuerySet(this.querySet, 0, this.entries.length * 2, this.resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, readback, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    this.pending.push({ readback, entries: this.entries });
    this.entries = [];
  }

  async take(): Promise<KernelSpan[]> {
    this.flush();
    const batches = this.pending;
    this.pending = [];
    const spans: KernelSpan[] = [];
    for (const { readback, entries } of batches) {
      await readback.mapAsync(GPUMapMode.READ);
      const ticks = new BigInt64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      readback.destroy();
      const offset = hostOffsetNs(
        entries.map((e) => e.hostSubmitNs),
        entries.map((_, i) => Number(ticks[i * 2]!)),
      );
      entries.forEach((e, i) => {
        // The offset puts every start at or after its submit; adding it to ~1e9 ns ticks can round one
        // ulp before that, which the clamps take back.
        const startNs = Math.max(Number(ticks[i * 2]!) + offset, e.hostSubmitNs);
        spans.push({
          label: e.label,
          tag: e.tag,
          startNs,
          endNs: Math.max(Number(ticks[i * 2 + 1]!) + offset, startNs),
          submittedNs: e.hostSubmitNs,
        });
      });
    }
    return spans;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
  }
}
