import { GPU } from 'gpu.js';
import { GpuJsKernels } from '../../kernels/gpujs/gpujs-kernels.js';
import { KernelCache } from '../../kernels/gpujs/kernel-cache.js';
import type { AdapterSummary } from '../device.js';
import { HostDevice } from '../host-device.js';
import { type GpuJsMode, gpujsAdapterSummary } from './gpujs-info.js';

/**
 * One logical gpu.js device: its own `GPU` instance (so its compiled kernels and worker pools are its own
 * and die with it), host-array tensors with the usual ledger and budget (HostDevice), and the gpu.js kernels.
 */
export class GpuJsDevice extends HostDevice {
  readonly backend = 'gpujs' as const;
  readonly adapter: AdapterSummary;
  readonly kernels: GpuJsKernels;
  readonly mode: GpuJsMode;
  private readonly gpu: GPU;
  private destroyed = false;

  constructor(id: number, mode: GpuJsMode, budgetBytes?: number) {
    super(id, `gpujs:${id}`, budgetBytes);
    this.mode = mode;
    this.adapter = gpujsAdapterSummary(mode);
    this.gpu = new GPU({ mode });
    // Threaded (worker-pool) runs exist only on webasm; gpu.js itself keeps small outputs on the caller's thread.
    this.kernels = new GpuJsKernels(this, new KernelCache(this.gpu, mode === 'webasm'));
  }

  /**
   * Releases the compiled kernels and their worker pools. gpu.js's destroy is asynchronous; it is started
   * here and not awaited (Device.destroy is synchronous); idle pool workers are unref'd, so the process
   * exits by itself either way.
   */
  override destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.gpu.destroy().catch(() => undefined);
  }
}
