import { DistributedTensor, type Placement, Replicate, Shard } from '../../collectives/layout.js';
import type { DeviceGroup } from '../../runtime/device-group.js';
import type { StagePlan } from '../model-plan.js';

/**
 * What the chain kinds share: replicas take microbatches in turn (one module per replica device), a
 * split stage runs on its whole group, and a row split reads its input sharded like its weight's rows.
 */
export class ChainPlacement {
  constructor(
    readonly plan: StagePlan,
    readonly group: DeviceGroup,
  ) {}

  groupFor(microbatch: number): DeviceGroup {
    if (this.plan.mode !== 'replicas') return this.group;
    return this.group.select([this.group.devices[microbatch % this.group.size]!.id]);
  }

  /** The replica index of microbatch `mb` (0 for a stage that is not replicated). */
  replicaOf(microbatch: number): number {
    return this.plan.mode === 'replicas' ? microbatch % this.group.size : 0;
  }

  /** Groups of one device each, for the modules of a replicated or single-device stage. */
  singles(): DeviceGroup[] {
    return this.group.devices.map((d) => this.group.select([d.id]));
  }

  inputPlacement(readsIds: boolean): Placement {
    return this.plan.mode === 'row' && !readsIds ? Shard(1, this.plan.shardSizes) : Replicate();
  }
}

/** A one-device module's output, sharded over a group of one, as the whole tensor it is. */
export function whole(x: DistributedTensor): DistributedTensor {
  if (x.placement.kind === 'replicate') return x;
  return new DistributedTensor(x.group, Replicate(), x.globalShape, x.shards);
}
