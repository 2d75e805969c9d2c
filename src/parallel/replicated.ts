import { perDeviceOrFree } from '../collectives/host-io.js';
import { DistributedTensor, Replicate } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { mapShards } from './shards.js';

/** A host vector uploaded whole to every device of a group (a bias added after a sum). */
export function uploadReplicated(group: DeviceGroup, data: Float32Array, label: string): DistributedTensor {
  const shards = perDeviceOrFree(group, (d, r) => d.upload(data, [data.length], `${label}[${r}]`));
  return new DistributedTensor(group, Replicate(), [data.length], shards);
}

/** y + b on every device of a replicated y: the bias of a summed output, added once, after the sum. */
export async function addBiasOnce(y: DistributedTensor, bias: DistributedTensor): Promise<DistributedTensor> {
  try {
    return await mapShards(y, (s, device, r) => device.kernels.add(s, bias.shards[r]!, `${s.label}+bias`));
  } finally {
    y.free();
  }
}
