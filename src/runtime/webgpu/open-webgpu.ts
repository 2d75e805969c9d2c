import { ParallelError } from '../../errors.js';
import { MatmulPlanner, type TunedPicks } from '../../kernels/webgpu/matmul-planner.js';
import type { TuningCache } from '../../kernels/webgpu/tuning-cache.js';
import { WebGpuKernels } from '../../kernels/webgpu/webgpu-kernels.js';
import { listAdapterNames, NO_ADAPTER_HELP, releaseGpu, requestAdapter, summarizeAdapter } from './dawn.js';
import { noteAdapter } from './dawn-poll.js';
import { GpuDevice } from './gpu-device.js';

export interface WebGpuOpenOptions {
  readonly count: number;
  /** The id of each device (default 0..count-1): a rank of a world numbers its devices as the strategy does. */
  readonly ids?: readonly number[];
  /** Adapter names (substrings), used in turn; absent: every adapter Dawn finds, in turn. */
  readonly adapters?: readonly string[];
  readonly backend?: string;
  readonly budgets: readonly (number | undefined)[];
  readonly tuned?: TunedPicks;
  readonly tuningCache?: TuningCache;
  readonly dumpShader?: (key: string, code: string) => void;
}

/**
 * Opens `count` WebGPU devices: one per adapter where there are several, else several logical devices on
 * the one adapter. Dawn's node bindings make one device per adapter object, so each device asks for its
 * adapter anew.
 */
export async function openWebGpuDevices(options: WebGpuOpenOptions): Promise<GpuDevice[]> {
  const names = options.adapters?.length ? [...options.adapters] : await listAdapterNames();
  const devices: GpuDevice[] = [];
  try {
    for (let id = 0; id < options.count; id++) {
      const adapterName = names.length > 1 || options.adapters?.length ? names[id % names.length] : undefined;
      const opened = await requestAdapter({ adapterName, backend: options.backend });
      if (!opened) {
        throw new ParallelError('NO_ADAPTER', 'no WebGPU adapter found', { fix: NO_ADAPTER_HELP });
      }
      const summary = summarizeAdapter(opened.adapter, options.backend ?? backendOf(opened.adapter));
      noteAdapter(summary.isSoftware);
      const planner = new MatmulPlanner(options.tuned ?? options.tuningCache?.picksFor(summary));
      const device = await GpuDevice.open({
        id: options.ids?.[id] ?? id,
        instance: opened.instance,
        adapter: opened.adapter,
        summary,
        budgetBytes: options.budgets[id],
        makeKernels: (d) => new WebGpuKernels(d, planner),
        dumpShader: options.dumpShader,
        // Dawn on a CPU adapter writes some buffers in place and pays page faults for fresh staging.
        writePath: summary.isSoftware ? 'host-visible' : 'queue',
        // The instance waits for the next device rather than leaving its threads behind (see dawn.ts).
        onDestroy: () => releaseGpu(opened.instance),
      }).catch((error: unknown) => {
        releaseGpu(opened.instance);
        throw error;
      });
      devices.push(device);
    }
  } catch (error) {
    for (const device of devices) device.destroy();
    throw error;
  }
  return devices;
}

function backendOf(adapter: GPUAdapter): string {
  // Dawn does not report its backend; on Linux every adapter it opens comes through Vulkan.
  const platform = process.platform;
  if (platform === 'darwin') return 'metal';
  if (platform === 'win32') return adapter.info.vendor ? 'd3d12' : 'unknown';
  return 'vulkan';
}
