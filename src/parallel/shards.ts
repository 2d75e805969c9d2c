import { DistributedTensor, type Placement } from '../collectives/layout.js';
import type { Device } from '../runtime/device.js';
import type { Shape, Tensor } from '../runtime/tensor.js';

/**
 * Runs one kernel per device of a distributed tensor's group, all queued before any is awaited, and wraps
 * the results; the placement and global shape are the input's unless given. Where one device fails, what
 * the others made is freed before the error goes on.
 */
export async function mapShards(
  x: DistributedTensor,
  body: (shard: Tensor, device: Device, rank: number) => Promise<Tensor>,
  placement: Placement = x.placement,
  globalShape: Shape = x.globalShape,
): Promise<DistributedTensor> {
  const shards = await allOrFree(
    x.group.devices.map((device, r) => body(x.shards[r]!, device, r)),
    (t) => t.free(),
  );
  return new DistributedTensor(x.group, placement, globalShape, shards);
}

/**
 * Every device's part of a step, awaited to the end even when one fails (a part still running then would
 * allocate after the caller's cleanup, and leak); on a failure what the others made is freed and the
 * first error goes on.
 */
export async function allOrFree<T>(parts: readonly Promise<T>[], free: (value: T) => void): Promise<T[]> {
  const settled = await Promise.allSettled(parts);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    for (const s of settled) if (s.status === 'fulfilled') free(s.value);
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** a + b per device, for two tensors of one placement on one group (the residual adds). */
export function addShards(
  a: DistributedTensor,
  b: DistributedTensor,
  label: string,
): Promise<DistributedTensor> {
  return mapShards(a, (shard, device, r) => device.kernels.add(shard, b.shards[r]!, label));
}
