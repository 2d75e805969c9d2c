import type { KernelSpan } from '../device.js';
import type { CommandBatch } from './command-batch.js';
import { TimestampProfiler } from './timestamps.js';

/**
 * A device's kernel profile: while enabled, each compute pass gets device timestamps where the adapter has
 * them (TimestampProfiler), else a span at its batch's submit time on the host clock. Spans carry the tag
 * set when their pass was encoded.
 */
export class DeviceProfiling {
  private readonly profiler: TimestampProfiler | null;
  private enabled = false;
  private tag = '';
  private hostSpans: KernelSpan[] = [];

  constructor(gpu: GPUDevice, name: string, timestamps: boolean) {
    this.profiler = timestamps ? new TimestampProfiler(gpu, name) : null;
  }

  setTag(tag: string): void {
    this.tag = tag;
  }

  enable(enabled: boolean): void {
    this.enabled = enabled;
  }

  /** The pass descriptor's part for a pass about to be encoded into `batch`. */
  passTimestamps(label: string, batch: CommandBatch): Pick<GPUComputePassDescriptor, 'timestampWrites'> {
    if (!this.enabled) return {};
    if (this.profiler) return { timestampWrites: this.profiler.nextPass(label, this.tag) };
    batch.untimed.push({ label, tag: this.tag });
    return {};
  }

  /** A batch was submitted at `hostNs` (taken just before the submit call: see hostOffsetNs). */
  submitted(batch: CommandBatch, hostNs: number): void {
    if (this.profiler && this.enabled) this.profiler.submitted(hostNs);
    for (const { label, tag } of batch.untimed)
      this.hostSpans.push({ label, tag, startNs: hostNs, endNs: hostNs });
  }

  /** Every span recorded since the last call; `wait` guards the timestamp readback against device loss. */
  async take(wait: <T>(work: Promise<T>, op: string) => Promise<T>): Promise<KernelSpan[]> {
    const host = this.hostSpans;
    this.hostSpans = [];
    if (!this.profiler) return host;
    return [...host, ...(await wait(this.profiler.take(), 'takeSpans'))];
  }

  destroy(): void {
    this.profiler?.destroy();
  }
}
