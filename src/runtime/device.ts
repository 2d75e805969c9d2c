import type { Kernels } from '../kernels/kernels.js';
import type { MemoryLedger } from './memory-ledger.js';
import type { DType, HostArray, Shape, Tensor } from './tensor.js';

export type BackendName = 'webgpu' | 'gpujs' | 'cpu';

/** What a device reports about the adapter behind it. */
export interface AdapterSummary {
  readonly name: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
  readonly backend: string;
  readonly isSoftware: boolean;
  readonly features: readonly string[];
  readonly limits: Readonly<Record<string, number>>;
}

/** One span of device work, in nanoseconds on the device's own clock or the host clock for host backends. */
export interface KernelSpan {
  readonly label: string;
  readonly tag: string;
  readonly startNs: number;
  readonly endNs: number;
  /** When the host submitted it, where the span comes from device timestamps (it may run much later). */
  readonly submittedNs?: number;
}

export interface EmptyOptions {
  /**
   * The caller writes every element before anything reads one (a collective's output): a reused buffer
   * is handed out as it is, uncleared, which on a CPU adapter also keeps it writable in place (BufferUses).
   */
  readonly overwritten?: boolean;
}

/**
 * One compute device: a WebGPU device, a gpu.js instance, or the CPU reference. Everything above the
 * runtime (kernels, collectives, the pipeline runner) talks to this interface only.
 */
export interface Device {
  readonly id: number;
  readonly name: string;
  readonly backend: BackendName;
  readonly adapter: AdapterSummary;
  readonly ledger: MemoryLedger;
  readonly kernels: Kernels;
  /** True when kernel spans come from device timestamps rather than host clocks. */
  readonly hasDeviceTimestamps: boolean;

  upload(data: HostArray, shape: Shape, label: string): Tensor;
  /** A tensor of zeros; with `overwritten`, of undefined contents that the caller writes in full first. */
  empty(shape: Shape, dtype: DType, label: string, options?: EmptyOptions): Tensor;
  read(tensor: Tensor): Promise<HostArray>;
  /** Resolves when all work queued so far has finished; rejects with DEVICE_LOST or VALIDATION. */
  sync(): Promise<void>;
  /** Starts recording one span per kernel, tagged with `tag` until the next call. */
  setProfileTag(tag: string): void;
  enableProfiling(enabled: boolean): void;
  /** Returns and clears the spans recorded since the last call (waits for their timestamps). */
  takeSpans(): Promise<KernelSpan[]>;
  /**
   * Hands back the memory the device keeps only for reuse (freed tensors' buffers, idle staging) and
   * returns its bytes, as torch.cuda.empty_cache: after a phase of large transfers or activations.
   */
  releaseCached(): number;
  destroy(): void;
}
