import { ReferenceKernels } from '../kernels/reference/reference-kernels.js';
import type { AdapterSummary } from './device.js';
import { HostDevice } from './host-device.js';
import { hostArchitecture } from './host-info.js';

/** The CPU reference as a device: slow, exact (float64 accumulation), and always present. */
export class CpuDevice extends HostDevice {
  readonly backend = 'cpu' as const;
  readonly adapter: AdapterSummary = {
    name: 'cpu-reference',
    vendor: 'host',
    architecture: hostArchitecture(),
    description: 'float64-accumulating JavaScript reference kernels',
    backend: 'cpu',
    isSoftware: true,
    features: [],
    limits: {},
  };
  readonly kernels: ReferenceKernels = new ReferenceKernels(this);

  constructor(id = 0, budgetBytes?: number) {
    super(id, `cpu:${id}`, budgetBytes);
  }
}
