import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { CollectiveContext } from './context.js';
import { type DistributedTensor, describePlacement, Replicate } from './layout.js';
import { type CollectiveResult, type RedistributeOptions, redistribute } from './redistribute.js';

export function requirePartial(op: string, input: DistributedTensor): void {
  if (input.placement.kind !== 'partial') {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `${op} needs a Partial(sum) input, got ${describePlacement(input.placement)}`,
      {
        where: op,
      },
    );
  }
}

/** AllReduce (sum): Partial on the source group -> the sum, Replicate on `to` (default the source group). */
export async function allReduce(
  ctx: CollectiveContext,
  input: DistributedTensor,
  to: DeviceGroup = input.group,
  options?: RedistributeOptions,
): Promise<CollectiveResult> {
  requirePartial('allReduce', input);
  return redistribute(ctx, input, to, Replicate(), { label: 'allReduce', ...options });
}
