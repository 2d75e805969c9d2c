import { DistributedTensor } from '../collectives/layout.js';
import type { AddRmsNormResult } from '../kernels/kernels.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { expectShape, loadReplicated } from './load-shards.js';
import type { Module, Parameter } from './module.js';
import { allOrFree, mapShards } from './shards.js';
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

  /**
   * sum = x + residual and normed = norm(sum), each device on its own copy, in one kernel each (the residual
   * add before a norm: between a layer's attention and its MLP, and between layers).
   */
  async addAndNorm(
    x: DistributedTensor,
    residual: DistributedTensor,
  ): Promise<{ sum: DistributedTensor; normed: DistributedTensor }> {
    const done = await allOrFree(
      x.group.devices.map((device, r) =>
        device.kernels.addRmsNorm(
          x.shards[r]!,
          residual.shards[r]!,
          this.weight.shards[r]!,
          this.eps,
          this.name,
        ),
      ),
      (d) => {
        d.sum.free();
        d.normed.free();
      },
    );
    const wrap = (pick: (d: AddRmsNormResult) => DistributedTensor['shards'][number]) =>
      new DistributedTensor(x.group, x.placement, x.globalShape, done.map(pick));
    return { sum: wrap((d) => d.sum), normed: wrap((d) => d.normed) };
  }

  free(): void {
    this.weight.free();
  }
}
