import type { AdapterSummary } from './device.js';
import {
  listAdapterNames,
  NO_ADAPTER_HELP,
  releaseGpu,
  requestAdapter,
  summarizeAdapter,
} from './webgpu/dawn.js';

export interface SystemInfo {
  readonly webgpu: readonly AdapterSummary[];
  /** Set when no WebGPU adapter answered: what to install. */
  readonly noAdapterHelp: string | null;
}

/** Every WebGPU adapter Dawn can open, each asked for its features and limits. */
export async function describeSystem(): Promise<SystemInfo> {
  const names = await listAdapterNames();
  const adapters: AdapterSummary[] = [];
  for (const adapterName of names.length > 0 ? names : [undefined]) {
    const opened = await requestAdapter({ adapterName }).catch(() => null);
    if (!opened) continue;
    adapters.push(summarizeAdapter(opened.adapter, process.platform === 'linux' ? 'vulkan' : 'auto'));
    releaseGpu(opened.instance);
  }
  return { webgpu: adapters, noAdapterHelp: adapters.length === 0 ? NO_ADAPTER_HELP : null };
}
