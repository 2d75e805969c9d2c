import { createRequire } from 'node:module';
import { GPU, WebAssemblyKernel } from 'gpu.js';
import type { AdapterSummary } from '../device.js';

export type GpuJsMode = 'webasm' | 'cpu';

/** gpu.js's version, read from its package.json (gpu.js exports no version constant). */
export function gpujsVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('gpu.js/package.json') as { version: string }).version;
}

/** What WebAssembly offers here: the webasm mode needs WebAssembly; SIMD and threads make it fast. */
export interface WasmSupport {
  readonly webAssembly: boolean;
  readonly simd: boolean;
  readonly threads: boolean;
}

export function wasmSupport(): WasmSupport {
  const webAssembly = GPU.isWebAssemblySupported === true;
  if (!webAssembly) return { webAssembly, simd: false, threads: false };
  // The webasm kernel class answers these by compiling probe modules; its typings do not declare them.
  const probe = WebAssemblyKernel as unknown as { isSIMDSupported: boolean; isThreadsSupported: boolean };
  return { webAssembly, simd: probe.isSIMDSupported === true, threads: probe.isThreadsSupported === true };
}

/** webasm wherever WebAssembly runs, the plain-JavaScript cpu mode elsewhere. */
export function defaultGpuJsMode(): GpuJsMode {
  return wasmSupport().webAssembly ? 'webasm' : 'cpu';
}

export function gpujsAdapterSummary(mode: GpuJsMode): AdapterSummary {
  const version = gpujsVersion();
  const wasm = wasmSupport();
  const detail =
    mode === 'webasm'
      ? `WebAssembly${wasm.simd ? ' SIMD' : ''}${wasm.threads ? ' + worker threads' : ''}`
      : 'plain JavaScript on the host';
  return {
    name: `gpu.js ${version} (${mode})`,
    vendor: 'gpu.js',
    architecture: process.arch,
    description: `gpu.js ${version}, mode ${mode}: ${detail}`,
    backend: `gpujs-${mode}`,
    isSoftware: true,
    features:
      mode === 'webasm'
        ? [wasm.simd ? 'wasm-simd' : '', wasm.threads ? 'wasm-threads' : ''].filter(Boolean)
        : [],
    limits: {},
  };
}
