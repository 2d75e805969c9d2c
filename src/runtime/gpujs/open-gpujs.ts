import { ParallelError } from '../../errors.js';
import type { Device } from '../device.js';

export interface GpuJsOpenOptions {
  readonly count: number;
  readonly budgets: readonly (number | undefined)[];
  readonly mode?: 'webasm' | 'cpu';
}

export async function openGpuJsDevices(_options: GpuJsOpenOptions): Promise<Device[]> {
  throw new ParallelError('BACKEND', 'the gpu.js backend is not built yet');
}
