import type { DeviceGroup } from '../runtime/device-group.js';
import { requirePartial } from './all-reduce.js';
import type { CollectiveContext } from './context.js';
import { type DistributedTensor, Shard } from './layout.js';
import { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';

/** ReduceScatter (sum): Partial on the source group -> the sum, Shard(dim) (optionally uneven) on `to`. */
export async function reduceScatter(
  ctx: CollectiveContext,
  input: DistributedTensor,
  dim: number,
  to: DeviceGroup = input.group,
  sizes?: readonly number[],
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  requirePartial('reduceScatter', input);
  return redistribute(ctx, input, to, Shard(dim, sizes), { label: 'reduceScatter', ...options });
}
