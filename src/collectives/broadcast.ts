import { DeviceGroup } from '../runtime/device-group.js';
import type { Tensor } from '../runtime/tensor.js';
import type { CollectiveContext } from './context.js';
import { DistributedTensor, Replicate, Shard } from './layout.js';
import { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';

/** A tensor on one device as a one-device distributed tensor (the root of broadcast, scatter, send). */
export function onOneDevice(tensor: Tensor): DistributedTensor {
  return new DistributedTensor(DeviceGroup.of([tensor.device]), Replicate(), tensor.shape, [tensor]);
}

/** Broadcast: a tensor on its device -> Replicate on `to` (the root keeps its tensor if it is in `to`). */
export async function broadcast(
  ctx: CollectiveContext,
  tensor: Tensor,
  to: DeviceGroup,
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  return redistribute(ctx, onOneDevice(tensor), to, Replicate(), { label: 'broadcast', ...options });
}

/** Scatter: a tensor on its device -> Shard(dim) (optionally uneven) on `to`; each device gets only its slice. */
export async function scatter(
  ctx: CollectiveContext,
  tensor: Tensor,
  to: DeviceGroup,
  dim: number,
  sizes?: readonly number[],
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  return redistribute(ctx, onOneDevice(tensor), to, Shard(dim, sizes), { label: 'scatter', ...options });
}
