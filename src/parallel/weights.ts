import { boxRuns, fullBox, shardBox } from '../collectives/box.js';
import { checkPlacement, DistributedTensor, localShape, Shard } from '../collectives/layout.js';
import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { checkFills, elementCount, type Shape } from '../runtime/tensor.js';

/** What every parallel linear layer is built from: the full weight and bias, split by the layer. */
export interface LinearLayerOptions {
  readonly group: DeviceGroup;
  /** Full weight, row-major [inFeatures, outFeatures]. */
  readonly weight: Float32Array;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bias?: Float32Array;
  readonly label?: string;
}

/** Uploads each device's slice of a host weight along `dim`: the layer's own shards, sizes checked first. */
export function shardWeight(
  group: DeviceGroup,
  data: Float32Array,
  shape: Shape,
  dim: number,
  sizes: readonly number[] | undefined,
  label: string,
): DistributedTensor {
  checkFills(data, shape, label);
  const placement = Shard(dim, sizes);
  checkPlacement(shape, placement, group.size, label);
  const whole = fullBox(shape);
  const shards = group.devices.map((device, rank) => {
    const local = localShape(shape, placement, group.size, rank);
    const part = new Float32Array(elementCount(local));
    let at = 0;
    for (const run of boxRuns(shardBox(shape, placement, group.size, rank), whole)) {
      part.set(data.subarray(run.offset, run.offset + run.count), at);
      at += run.count;
    }
    return device.upload(part, local, `${label}[${rank}]`);
  });
  return new DistributedTensor(group, placement, shape, shards);
}

/** Checks that a distributed input lives on exactly the layer's group. */
export function checkSameGroup(input: DistributedTensor, group: DeviceGroup, where: string): void {
  const same = input.group.size === group.size && input.group.devices.every((d, i) => d === group.devices[i]);
  if (!same) {
    throw new ParallelError(
      'GROUP',
      `input lives on ${input.group.describe()}, the layer on ${group.describe()}`,
      {
        where,
        fix: 'redistribute the input onto the layer group first',
      },
    );
  }
}
