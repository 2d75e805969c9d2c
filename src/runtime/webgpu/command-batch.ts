import type { BufferUse } from './buffer-uses.js';

/**
 * Compute passes a batch holds before it is submitted on its own. Each submit costs lavapipe ~300 µs of
 * host and driver time whatever it carries, which a small kernel does not amortise (bench/RESULTS.md,
 * "Dispatch batching"); but a GPU idles while the host encodes, so a batch is not let grow without end.
 */
export const BATCH_MAX_PASSES = 32;

/**
 * Work encoded for one device and not yet submitted: one command encoder holding a compute pass per
 * kernel (so each keeps its own timestamps) and the buffers it touches. The device submits it before
 * anything that must come after it on the queue (see GpuDevice.flush).
 */
export class CommandBatch {
  readonly encoder: GPUCommandEncoder;
  readonly uses = new Map<GPUBuffer, boolean>();
  /** Buffers freed while the batch still used them: destroyed once it is submitted. */
  readonly retired: GPUBuffer[] = [];
  /** Profiled passes without device timestamps, given the submit time as their span. */
  readonly untimed: { readonly label: string; readonly tag: string }[] = [];
  passes = 0;

  constructor(device: GPUDevice) {
    this.encoder = device.createCommandEncoder({ label: 'batch' });
  }

  get full(): boolean {
    return this.passes >= BATCH_MAX_PASSES;
  }

  /** Whether the batch touches the buffer (reads or writes it). */
  has(buffer: GPUBuffer): boolean {
    return this.uses.has(buffer);
  }

  touch(buffer: GPUBuffer, writes: boolean): void {
    this.uses.set(buffer, (this.uses.get(buffer) ?? false) || writes);
  }

  bufferUses(): BufferUse[] {
    return [...this.uses].map(([buffer, writes]) => ({ buffer, writes }));
  }
}
