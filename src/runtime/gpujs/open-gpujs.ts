import { ParallelError } from '../../errors.js';
import type { Device } from '../device.js';
import { GpuJsDevice } from './gpujs-device.js';
import { defaultGpuJsMode, type GpuJsMode, wasmSupport } from './gpujs-info.js';

export interface GpuJsOpenOptions {
  readonly count: number;
  /** The id of each device (default 0..count-1). */
  readonly ids?: readonly number[];
  readonly budgets: readonly (number | undefined)[];
  /** Default: webasm where WebAssembly runs, else cpu. */
  readonly mode?: GpuJsMode;
}

/** Opens `count` logical gpu.js devices, each with its own gpu.js instance and its own memory budget. */
export async function openGpuJsDevices(options: GpuJsOpenOptions): Promise<Device[]> {
  const mode = options.mode ?? defaultGpuJsMode();
  if (mode !== 'webasm' && mode !== 'cpu') {
    throw new ParallelError('INVALID_ARGUMENT', `unknown gpu.js mode '${String(mode)}'`, {
      fix: "use 'webasm' or 'cpu'",
    });
  }
  if (mode === 'webasm' && !wasmSupport().webAssembly) {
    throw new ParallelError('BACKEND', 'gpu.js webasm mode needs WebAssembly, which this runtime lacks', {
      where: 'gpujs',
      fix: "use the gpu.js mode 'cpu'",
    });
  }
  const devices: Device[] = [];
  try {
    for (let id = 0; id < options.count; id++)
      devices.push(new GpuJsDevice(options.ids?.[id] ?? id, mode, options.budgets[id]));
  } catch (error) {
    for (const device of devices) device.destroy();
    throw error;
  }
  return devices;
}
