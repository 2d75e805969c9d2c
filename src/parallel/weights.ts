import { boxRuns, fullBox, shardBox } from '../collectives/box.js';
import { checkPlacement, DistributedTensor, localShape, Shard } from '../collectives/layout.js';
import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { checkFills, elementCount, formatShape, type Shape } from '../runtime/tensor.js';

/** What every parallel linear layer is built from: the full weight and bias, split by the layer. */
export interface LinearLayerOptions {
  readonly group: DeviceGroup;
  /**
   * Full weight, row-major [inFeatures, outFeatures], split by the layer; or the layer's shards already on
   * its group (each device loaded only its own part from a checkpoint), placed as the layer splits them.
   */
  readonly weight: Float32Array | DistributedTensor;
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

/**
 * A layer's weight: host values split along `dim`, or shards given as they are, which must be placed on the
 * layer's group as that split would place them.
 */
export function layerWeight(
  group: DeviceGroup,
  weight: Float32Array | DistributedTensor,
  shape: Shape,
  dim: number,
  sizes: readonly number[] | undefined,
  label: string,
): DistributedTensor {
  if (!(weight instanceof DistributedTensor)) return shardWeight(group, weight, shape, dim, sizes, label);
  checkSameGroup(weight, group, label);
  const placed = weight.placement;
  const fits =
    weight.globalShape.length === shape.length &&
    weight.globalShape.every((d, i) => d === shape[i]) &&
    placed.kind === 'shard' &&
    placed.dim === dim &&
    (!sizes || weight.shards.every((s, r) => s.shape[dim] === sizes[r]));
  if (!fits) {
    throw new ParallelError(
      'SHAPE',
      `${label} must be ${formatShape(shape)} sharded on dim ${dim}, got ${weight.describe()}`,
      {
        where: label,
      },
    );
  }
  return weight;
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
