import { ParallelError } from '../../errors.js';
import { MatmulPlanner } from '../../kernels/webgpu/matmul-planner.js';
import { WebGpuKernels } from '../../kernels/webgpu/webgpu-kernels.js';
import { summarizeAdapter } from './dawn.js';
import { GpuDevice } from './gpu-device.js';
import type { WebGpuOpenOptions } from './open-webgpu.js';

export type { WebGpuOpenOptions } from './open-webgpu.js';

/** Chromium's software adapter may name itself only in `architecture` (its description can be empty). */
const SOFTWARE_ARCHITECTURE = /swiftshader|llvmpipe|lavapipe/i;

/**
 * The page's twin of open-webgpu.ts: `count` devices from `navigator.gpu`. A browser adapter gives one device,
 * so each device asks for an adapter anew; there is no choosing among adapters by name in a page.
 */
export async function openWebGpuDevices(options: WebGpuOpenOptions): Promise<GpuDevice[]> {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) {
    throw new ParallelError('NO_ADAPTER', 'this browser has no WebGPU (navigator.gpu is missing)', {
      fix: 'use a browser with WebGPU over https or localhost (Chromium: --enable-unsafe-webgpu where it is off)',
    });
  }
  if (options.adapters?.length) {
    throw new ParallelError('INVALID_ARGUMENT', 'a page cannot pick WebGPU adapters by name', {
      where: 'adapters',
      fix: 'drop the adapter names: every device comes from navigator.gpu.requestAdapter()',
    });
  }
  const devices: GpuDevice[] = [];
  try {
    for (let id = 0; id < options.count; id++) {
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (!adapter) {
        throw new ParallelError('NO_ADAPTER', `navigator.gpu gave no adapter for device ${id}`, {
          fix: 'check chrome://gpu: WebGPU may be blocklisted on this machine (--enable-unsafe-webgpu)',
        });
      }
      const summary = summarizeAdapter(adapter, 'browser');
      const named = {
        ...summary,
        // Chromium reports a PCI id (0xc0de for SwiftShader) as `device`; the description says more.
        name: adapter.info.description || `${adapter.info.vendor} ${adapter.info.architecture}`,
        isSoftware: summary.isSoftware || SOFTWARE_ARCHITECTURE.test(adapter.info.architecture),
      };
      const planner = new MatmulPlanner(options.tuned ?? options.tuningCache?.picksFor(named));
      devices.push(
        await GpuDevice.open({
          id,
          instance: gpu,
          adapter,
          summary: named,
          budgetBytes: options.budgets[id],
          makeKernels: (d) => new WebGpuKernels(d, planner),
          dumpShader: options.dumpShader,
        }),
      );
    }
  } catch (error) {
    for (const device of devices) device.destroy();
    throw error;
  }
  return devices;
}
