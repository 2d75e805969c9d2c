import type { Device } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { requirePartial } from './all-reduce.js';
import type { CollectiveContext } from './context.js';
import { type DistributedTensor, Replicate } from './layout.js';
import { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';

/**
 * Reduce (sum) to one device: Partial on the source group -> the sum on `root` alone ("AllReduce from
 * [1,2] to [2]"). `root` comes from `within` (any group that holds it), or is a device of the input's group.
 */
export async function reduce(
  ctx: CollectiveContext,
  input: DistributedTensor,
  root: Device,
  within: DeviceGroup = input.group,
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  requirePartial('reduce', input);
  return redistribute(ctx, input, within.select([within.device(root.id).id]), Replicate(), {
    label: 'reduce',
    ...options,
  });
}
