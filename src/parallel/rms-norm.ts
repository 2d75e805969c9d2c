import type { DistributedTensor } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { expectShape, loadReplicated } from './load-shards.js';
import type { Module, Parameter } from './module.js';
import { mapShards } from './shards.js';
import type { WeightReader } from './weight-reader.js';

/** RMSNorm on a replicated input: each device normalizes its own copy (the weight is replicated too). */
export class ReplicatedRmsNorm implements Module {
  private readonly weight: DistributedTensor;

  constructor(
    group: DeviceGroup,
    reader: WeightReader,
    private readonly name: string,
    hidden: number,
    private readonly eps: number,
  ) {
    expectShape(reader, name, [hidden]);
    this.weight = loadReplicated(reader, name, group);
  }

  parameters(): Parameter[] {
    return [{ name: this.name, value: this.weight }];
  }

  forward(x: DistributedTensor): Promise<DistributedTensor> {
    return mapShards(x, (shard, device, r) =>
      device.kernels.rmsNorm(shard, this.weight.shards[r]!, this.eps, this.name),
    );
  }

  free(): void {
    this.weight.free();
  }
}
