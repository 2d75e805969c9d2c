import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { CollectiveContext } from './context.js';
import { type DistributedTensor, describePlacement, Replicate } from './layout.js';
import { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';

/**
 * AllGather along the input's shard dim: Shard(d) on the source group -> Replicate on `to` (default the
 * source group; may be another, overlapping group: "AllGather from [0,1] to [1,2]").
 */
export async function allGather(
  ctx: CollectiveContext,
  input: DistributedTensor,
  to: DeviceGroup = input.group,
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  if (input.placement.kind !== 'shard') {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `allGather needs a Shard input, got ${describePlacement(input.placement)}`,
      {
        where: 'allGather',
      },
    );
  }
  return redistribute(ctx, input, to, Replicate(), { label: 'allGather', ...options });
}
