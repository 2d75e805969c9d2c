import type { AdapterSummary } from '../device.js';

/** The limits a user of compute kernels cares about, read off every adapter. */
export const REPORTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * The summary of any WebGPU adapter, Dawn's or a browser's, that the library reports and chooses by. A
 * software adapter (lavapipe, llvmpipe, SwiftShader) runs on the CPU: its figures are CPU figures.
 */
export function summarizeAdapter(adapter: GPUAdapter, backend = 'auto'): AdapterSummary {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const key of REPORTED_LIMITS) limits[key] = Number(adapter.limits[key]);
  const isFallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  return {
    name: info.device || info.description || 'unknown adapter',
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
    backend,
    isSoftware:
      isFallback ||
      info.architecture === 'software' ||
      /llvmpipe|lavapipe|swiftshader/i.test(info.description),
    features: [...adapter.features].sort(),
    limits,
  };
}
