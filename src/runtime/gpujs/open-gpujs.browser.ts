import { ParallelError } from '../../errors.js';
import type { Device } from '../device.js';
import type { GpuJsOpenOptions } from './open-gpujs.js';

export type { GpuJsOpenOptions } from './open-gpujs.js';

/**
 * The page's twin of open-gpujs.ts: the browser build runs on navigator.gpu only (gpu.js is Node's fallback
 * for machines without a Vulkan driver, and would double the bundle).
 */
export async function openGpuJsDevices(_options: GpuJsOpenOptions): Promise<Device[]> {
  throw new ParallelError(
    'NO_ADAPTER',
    'this browser gave no WebGPU adapter, and the page has no gpu.js fallback',
    {
      fix: 'use a browser with WebGPU (Chromium: --enable-unsafe-webgpu where it is off), or run the CLI under Node',
    },
  );
}
