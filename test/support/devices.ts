import { type BackendChoice, DeviceGroup } from '../../src/runtime/device-group.js';
import type { MemoryLedger } from '../../src/runtime/memory-ledger.js';
import { releaseGpu, requestAdapter } from '../../src/runtime/webgpu/dawn.js';

/**
 * Which backends the test files run on: WebGPU (Dawn) and, where the test covers it, the fallback. In CI a
 * missing adapter is a failure, never a skip: the tests of a WebGPU library must not pass without WebGPU.
 */
export const TEST_BACKEND: BackendChoice =
  (process.env.WEBGPU_PARALLEL_TEST_BACKEND as BackendChoice | undefined) ?? 'webgpu';

export async function webGpuAvailable(): Promise<boolean> {
  if (TEST_BACKEND !== 'webgpu') return true;
  const opened = await requestAdapter();
  if (opened) releaseGpu(opened.instance);
  if (!opened && process.env.CI) {
    throw new Error(
      'CI is set but no WebGPU adapter answered: install a Vulkan driver (scripts/install-vulkan.sh)',
    );
  }
  return opened !== null;
}

/** gpu.js mode when TEST_BACKEND is gpujs (WEBGPU_PARALLEL_TEST_GPUJS_MODE=cpu|webasm; default: webasm where it runs). */
const TEST_GPUJS_MODE = process.env.WEBGPU_PARALLEL_TEST_GPUJS_MODE as 'webasm' | 'cpu' | undefined;

export function openTestGroup(count: number, budget?: number): Promise<DeviceGroup> {
  return DeviceGroup.open({
    count,
    backend: TEST_BACKEND,
    memoryBudgetBytes: budget,
    gpujsMode: TEST_GPUJS_MODE,
  });
}

/**
 * Bytes of a device's live tensors and staging: the ledger without the freed buffers a WebGPU device keeps
 * for reuse ('tensor cache', handed back on demand), which move with every allocation and are no leak.
 */
export function liveBytes(device: { readonly ledger: MemoryLedger }): number {
  return device.ledger.liveEntries.filter((e) => e.label !== 'tensor cache').reduce((n, e) => n + e.bytes, 0);
}
