import { ParallelError } from '../errors.js';
import type { TunedPicks } from '../kernels/webgpu/matmul-planner.js';
import type { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import { CpuDevice } from './cpu-device.js';
import type { BackendName, Device } from './device.js';

export type BackendChoice = BackendName | 'auto';

/** Every backend a group can be opened on; `auto` is WebGPU where an adapter answers, else gpu.js. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'gpujs', 'cpu'];

export interface OpenDeviceGroupOptions {
  /** How many devices to open (default 1). */
  readonly count?: number;
  /**
   * The id of each device (default 0..count-1): a rank of a world opens only its own devices and numbers
   * them as the strategy file does.
   */
  readonly ids?: readonly number[];
  /** `auto` tries WebGPU and falls back to gpu.js when no adapter answers. */
  readonly backend?: BackendChoice;
  /** WebGPU adapter names (substrings of Dawn's names), used in turn for the devices. */
  readonly adapters?: readonly string[];
  /** Dawn backend to ask for (vulkan, metal, d3d12). */
  readonly dawnBackend?: string;
  /** A budget for every device, or one per device. */
  readonly memoryBudgetBytes?: number | readonly number[];
  /** Tuned matmul picks for the adapter (see `loadTunedPicks`). */
  readonly tuned?: TunedPicks;
  /** Where tuned picks are kept per adapter (`TuningCache.inUserCache()`); used when `tuned` is absent. */
  readonly tuningCache?: TuningCache;
  /** Called with every WGSL source before it is compiled: a debug dump. */
  readonly dumpShader?: (key: string, code: string) => void;
  /** gpu.js mode for the gpujs backend: `webasm` where WebAssembly runs, else `cpu`. */
  readonly gpujsMode?: 'webasm' | 'cpu';
}

/**
 * An ordered set of devices. The group that opened them owns them and destroys them; `select` gives a
 * view on some of them (a tensor-parallel group, a collective's source or destination).
 */
export class DeviceGroup {
  readonly devices: readonly Device[];
  private readonly owner: boolean;

  private constructor(devices: readonly Device[], owner: boolean) {
    this.devices = devices;
    this.owner = owner;
  }

  static async open(options: OpenDeviceGroupOptions = {}): Promise<DeviceGroup> {
    const count = options.count ?? 1;
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new ParallelError('INVALID_ARGUMENT', `device count must be a positive integer, got ${count}`);
    }
    const budgets = Array.from({ length: count }, (_, i) =>
      typeof options.memoryBudgetBytes === 'number'
        ? options.memoryBudgetBytes
        : options.memoryBudgetBytes?.[i],
    );
    const backend = options.backend ?? 'auto';
    if (!BACKEND_CHOICES.includes(backend)) {
      throw new ParallelError('INVALID_ARGUMENT', `unknown backend '${backend}'`, {
        where: 'backend',
        fix: `use one of ${BACKEND_CHOICES.join(', ')}`,
      });
    }
    const adapters = options.adapters ?? [];
    if (adapters.length > 0) {
      // Named adapters are WebGPU's: never a silent fallback past a name that matches nothing.
      const { checkAdapterNames } = await import('./webgpu/dawn.js');
      await checkAdapterNames(adapters);
      if (backend === 'gpujs' || backend === 'cpu') {
        throw new ParallelError('INVALID_ARGUMENT', `adapters are WebGPU's, but the backend is ${backend}`, {
          where: 'adapters',
          fix: 'drop the adapter names, or use the webgpu backend',
        });
      }
    }
    if (backend === 'cpu') {
      return new DeviceGroup(
        budgets.map((budget, i) => new CpuDevice(options.ids?.[i] ?? i, budget)),
        true,
      );
    }
    if (backend === 'webgpu' || backend === 'auto') {
      const { openWebGpuDevices } = await import('./webgpu/open-webgpu.js');
      try {
        const devices = await openWebGpuDevices({
          count,
          ids: options.ids,
          adapters: options.adapters,
          backend: options.dawnBackend,
          budgets,
          tuned: options.tuned,
          tuningCache: options.tuningCache,
          dumpShader: options.dumpShader,
        });
        return new DeviceGroup(devices, true);
      } catch (error) {
        const fallback = backend === 'auto' && adapters.length === 0;
        if (!fallback || !(error instanceof ParallelError) || error.code !== 'NO_ADAPTER') throw error;
      }
    }
    const { openGpuJsDevices } = await import('./gpujs/open-gpujs.js');
    return new DeviceGroup(
      await openGpuJsDevices({ count, ids: options.ids, budgets, mode: options.gpujsMode }),
      true,
    );
  }

  /** Wraps devices opened elsewhere; the caller keeps ownership. */
  static of(devices: readonly Device[]): DeviceGroup {
    return new DeviceGroup(devices, false);
  }

  get size(): number {
    return this.devices.length;
  }

  get backend(): BackendName {
    return this.devices[0]!.backend;
  }

  device(id: number): Device {
    const device = this.devices.find((d) => d.id === id);
    if (!device) {
      throw new ParallelError('GROUP', `device ${id} is not in this group (${this.describe()})`, {
        fix: `use one of the ids ${this.devices.map((d) => d.id).join(', ')}`,
      });
    }
    return device;
  }

  /** A view on the devices with these ids, in this order. */
  select(ids: readonly number[]): DeviceGroup {
    if (new Set(ids).size !== ids.length || ids.length === 0) {
      throw new ParallelError('GROUP', `a device group needs distinct ids, got [${ids.join(', ')}]`);
    }
    return new DeviceGroup(
      ids.map((id) => this.device(id)),
      false,
    );
  }

  rankOf(device: Device): number {
    const rank = this.devices.indexOf(device);
    if (rank < 0) throw new ParallelError('GROUP', `${device.name} is not in ${this.describe()}`);
    return rank;
  }

  describe(): string {
    return `[${this.devices.map((d) => d.name).join(', ')}]`;
  }

  async sync(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.sync()));
  }

  /** `Device.releaseCached` on every device; the bytes handed back in all. */
  releaseCached(): number {
    return this.devices.reduce((bytes, d) => bytes + d.releaseCached(), 0);
  }

  /** Destroys every device this group opened; a view does nothing. */
  destroy(): void {
    if (!this.owner) return;
    for (const device of this.devices) device.destroy();
  }
}
