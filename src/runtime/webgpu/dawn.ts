import { ParallelError } from '../../errors.js';
import { installPollBackoff, pollModeFromEnv } from './dawn-poll.js';
import { quietNative } from './native-stderr.js';

// Adapter summaries are no Dawn matter (a browser's adapter has the same info); kept importable from here.
export { REPORTED_LIMITS, summarizeAdapter } from './adapter-summary.js';

export const NO_ADAPTER_HELP =
  "WebGPU needs a Vulkan driver. On a machine without a GPU install Mesa's CPU driver (lavapipe): on Debian 12 " +
  'add the bookworm-backports suite to /etc/apt/sources.list.d/debian.sources and run ' +
  "`apt-get install -t bookworm-backports mesa-vulkan-drivers` (Debian 12's own Mesa 22 is too old for Dawn), " +
  'or run `sudo bash scripts/install-vulkan.sh`. Until then, `--backend gpujs` runs every kernel on gpu.js instead.';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

export interface DawnOptions {
  /** Adapter name to pick (Dawn's `adapter=` flag): a substring of the adapter's name. */
  readonly adapterName?: string;
  /** Dawn backend (vulkan, metal, d3d12...); Dawn picks when absent. */
  readonly backend?: string;
}

let dawn: Promise<DawnModule> | undefined;

/**
 * Loads Dawn's node bindings once. They install the WebGPU constants (GPUBufferUsage...) that code written
 * against the browser API expects, and the backoff of Dawn's poll loop (dawn-poll.ts) wraps the global
 * `setImmediate` Dawn polls through: the two process-wide changes this library makes, both about Dawn.
 */
function loadDawn(): Promise<DawnModule> {
  dawn ??= import('webgpu').then(
    (mod: DawnModule) => {
      Object.assign(globalThis, mod.globals);
      installPollBackoff(mod.globals, pollModeFromEnv());
      return mod;
    },
    (cause: unknown) => {
      dawn = undefined;
      throw new ParallelError(
        'NO_ADAPTER',
        `cannot load Dawn's node bindings (npm package 'webgpu'): ${String(cause)}`,
        {
          fix: 'run `npm ci`; Dawn ships prebuilt binaries for linux-x64, linux-arm64, darwin and win32',
          cause,
        },
      );
    },
  );
  return dawn;
}

/**
 * Idle Dawn instances, by their flags. Every open device has an instance of its own: devices that shared one
 * shared lavapipe's workers, and a small kernel on one waited behind big ones on the others (13-19 ms
 * against 9-11 ms with an instance each), which is not what independent devices do. Dawn never gives back
 * an instance's threads (~5, even after GC), so a destroyed device's instance waits here for the next
 * device instead of a new one being made: a process that opens groups again and again stays at the most
 * instances it held at once.
 */
const idleInstances = new Map<string, GPU[]>();
const instanceKeys = new WeakMap<GPU, string>();

/**
 * A Dawn instance no open device uses. Timestamp quantization is off so kernel timings keep their
 * resolution.
 */
export async function openGpu(options: DawnOptions = {}): Promise<GPU> {
  const flags = ['disable-dawn-features=timestamp_quantization'];
  if (options.adapterName) flags.push(`adapter=${options.adapterName}`);
  if (options.backend) flags.push(`backend=${options.backend}`);
  const dawnModule = await loadDawn();
  const key = flags.join('\n');
  const instance = idleInstances.get(key)?.pop() ?? quietNative(() => dawnModule.create(flags));
  instanceKeys.set(instance, key);
  return instance;
}

/** Hands an instance back once nothing opened from it is in use (its device destroyed, or none made). */
export function releaseGpu(instance: GPU): void {
  const key = instanceKeys.get(instance);
  if (key === undefined) return;
  const idle = idleInstances.get(key) ?? [];
  if (!idle.includes(instance)) idle.push(instance);
  idleInstances.set(key, idle);
}

export interface OpenedAdapter {
  readonly instance: GPU;
  readonly adapter: GPUAdapter;
}

/** An adapter and the instance it came from; hand the instance back (`releaseGpu`) when done with both. */
export async function requestAdapter(options: DawnOptions = {}): Promise<OpenedAdapter | null> {
  const instance = await openGpu(options);
  try {
    const adapter = await quietNative(() => instance.requestAdapter({ powerPreference: 'high-performance' }));
    if (!adapter) releaseGpu(instance);
    return adapter ? { instance, adapter } : null;
  } catch (cause) {
    releaseGpu(instance);
    // Dawn rejects (rather than returning null) when a named adapter does not exist.
    if (options.adapterName) {
      throw new ParallelError('NO_ADAPTER', `no WebGPU adapter matches '${options.adapterName}'`, {
        fix: `pick one of: ${(await listAdapterNames()).join('; ') || 'none found'}`,
        cause,
      });
    }
    return null;
  }
}

/** NO_ADAPTER naming the first of `names` that no adapter's name contains, with the adapters there are. */
export async function checkAdapterNames(names: readonly string[]): Promise<void> {
  const real = await listAdapterNames();
  const missing = names.find((name) => !real.some((r) => r.includes(name)));
  if (missing === undefined) return;
  throw new ParallelError('NO_ADAPTER', `no WebGPU adapter matches '${missing}'`, {
    where: 'adapter',
    fix: real.length > 0 ? `pick one of: ${real.join('; ')}` : NO_ADAPTER_HELP,
  });
}

/**
 * Names of every adapter Dawn can open. WebGPU has no enumeration call, but Dawn answers a request for an
 * adapter that cannot exist with the list of those that do; that list is parsed here.
 */
export async function listAdapterNames(): Promise<string[]> {
  const gpu = await openGpu({ adapterName: 'webgpu-parallel-no-such-adapter' });
  try {
    const adapter = await quietNative(() => gpu.requestAdapter());
    return adapter ? [adapter.info.device] : [];
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    return [...text.matchAll(/name: '([^']+)'/g)].map((m) => m[1]!);
  } finally {
    releaseGpu(gpu);
  }
}
