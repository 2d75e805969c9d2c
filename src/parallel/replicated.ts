import { DistributedTensor, Replicate } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';

/** A host vector uploaded whole to every device of a group (a bias added after a sum). */
export function uploadReplicated(group: DeviceGroup, data: Float32Array, label: string): DistributedTensor {
  return new DistributedTensor(
    group,
    Replicate(),
    [data.length],
    group.devices.map((d, r) => d.upload(data, [data.length], `${label}[${r}]`)),
  );
}

/** y + b on every device of a replicated y: the bias of a summed output, added once, after the sum. */
export async function addBiasOnce(y: DistributedTensor, bias: DistributedTensor): Promise<DistributedTensor> {
  const shards = await Promise.all(
    y.shards.map((s, r) => s.device.kernels.add(s, bias.shards[r]!, `${s.label}+bias`)),
  );
  y.free();
  return new DistributedTensor(y.group, y.placement, y.globalShape, shards);
}
