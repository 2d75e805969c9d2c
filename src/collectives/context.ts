import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import { HostDevice } from '../runtime/host-device.js';
import type { GpuDevice } from '../runtime/webgpu/gpu-device.js';
import { HostTransport } from './host-transport.js';
import type { Transport } from './transport.js';
import { createWasmSum, type WasmSum } from './wasm-sum.js';
import { WebGpuTransport } from './webgpu-transport.js';

/** Where a Partial(sum) is summed: on the host while it passes through, or on the destination device. */
export type ReduceOn = 'host' | 'device' | 'auto';

export interface CollectiveOptions {
  /** Default `auto`: the host at or above `hostReduceMinBytes`, the device below. */
  readonly reduceOn?: ReduceOn;
  /**
   * Byte size from which `auto` sums on the host. The bench (bench/collectives.ts) measured the host sum
   * faster at every size on lavapipe, since a device sum needs every partial on every destination; the
   * default is therefore 0. Raise it where a real GPU sums faster than its host link carries the partials.
   */
  readonly hostReduceMinBytes?: number;
}

/**
 * Everything collectives keep between calls: one transport per device (the staging buffers are the
 * devices' own) and the host's SIMD sum with its wasm memory. Passed to every collective; no state lives in
 * module globals.
 */
export class CollectiveContext {
  readonly reduceOn: ReduceOn;
  readonly hostReduceMinBytes: number;
  private readonly transports = new Map<Device, Transport>();
  private simd: WasmSum | null | undefined;

  constructor(options: CollectiveOptions = {}) {
    this.reduceOn = options.reduceOn ?? 'auto';
    this.hostReduceMinBytes = options.hostReduceMinBytes ?? 0;
  }

  /** The transport for a device, by its backend: WebGPU buffers, or host arrays for CPU and gpu.js. */
  transport(device: Device): Transport {
    let transport = this.transports.get(device);
    if (transport) return transport;
    if (device.backend === 'webgpu') transport = new WebGpuTransport(device as GpuDevice);
    else if (device instanceof HostDevice) transport = new HostTransport(device);
    else {
      throw new ParallelError(
        'BACKEND',
        `collectives cannot move data on ${device.name} (backend ${device.backend})`,
        {
          where: device.name,
        },
      );
    }
    this.transports.set(device, transport);
    return transport;
  }

  /** Whether a reduction of this many bytes per destination is summed on the host. */
  reducesOnHost(bytes: number, override?: ReduceOn): boolean {
    const mode = override ?? this.reduceOn;
    if (mode !== 'auto') return mode === 'host';
    return bytes >= this.hostReduceMinBytes;
  }

  /** The host's SIMD sum, made on first use; null where WebAssembly SIMD is unavailable. */
  get hostSum(): WasmSum | null {
    if (this.simd === undefined) this.simd = createWasmSum();
    return this.simd;
  }

  /** Releases every staging buffer (their bytes leave the devices' ledgers) and the sum's wasm memory. */
  destroy(): void {
    for (const transport of this.transports.values()) transport.destroy();
    this.transports.clear();
    this.simd = undefined;
  }
}
