import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { formatShape, type Shape, type Tensor } from '../runtime/tensor.js';

/** Each device holds a slice along `dim`; `sizes` (one per device) makes the split uneven on purpose. */
export interface ShardPlacement {
  readonly kind: 'shard';
  readonly dim: number;
  readonly sizes?: readonly number[];
}

/** Every device holds the whole tensor. */
export interface ReplicatePlacement {
  readonly kind: 'replicate';
}

/** Every device holds a tensor of the full shape; the value is their elementwise sum. */
export interface PartialPlacement {
  readonly kind: 'partial';
}

/** DTensor-style placement of a tensor over an ordered device group. */
export type Placement = ShardPlacement | ReplicatePlacement | PartialPlacement;

export function Shard(dim: number, sizes?: readonly number[]): ShardPlacement {
  return sizes ? { kind: 'shard', dim, sizes: [...sizes] } : { kind: 'shard', dim };
}

export function Replicate(): ReplicatePlacement {
  return { kind: 'replicate' };
}

export function Partial(): PartialPlacement {
  return { kind: 'partial' };
}

export function describePlacement(p: Placement): string {
  if (p.kind === 'shard') return p.sizes ? `Shard(${p.dim}, [${p.sizes.join(', ')}])` : `Shard(${p.dim})`;
  return p.kind === 'replicate' ? 'Replicate()' : 'Partial(sum)';
}

/**
 * Sizes of `total` split over `parts` devices: the explicit sizes when given (they must add up), else an
 * even split, which must divide exactly: a silent remainder would make one device's shard differ from
 * what the user planned, so it is a SPLIT error that asks for explicit sizes.
 */
export function splitSizes(
  total: number,
  parts: number,
  sizes?: readonly number[],
  where = 'split',
): number[] {
  if (sizes) {
    if (sizes.length !== parts) {
      throw new ParallelError('SPLIT', `${sizes.length} shard sizes given for ${parts} devices`, { where });
    }
    // A size of zero is a device that holds no slice (a shard of shape [0, ...]).
    if (sizes.some((s) => !Number.isSafeInteger(s) || s < 0)) {
      throw new ParallelError(
        'SPLIT',
        `shard sizes must be non-negative integers, got [${sizes.join(', ')}]`,
        {
          where,
        },
      );
    }
    const sum = sizes.reduce((a, b) => a + b, 0);
    if (sum !== total) {
      throw new ParallelError('SPLIT', `shard sizes [${sizes.join(', ')}] add up to ${sum}, not ${total}`, {
        where,
      });
    }
    return [...sizes];
  }
  if (total % parts !== 0) {
    throw new ParallelError('SPLIT', `${total} does not split evenly over ${parts} devices`, {
      where,
      fix: 'pass explicit sizes per device (a weaker device can take less)',
    });
  }
  return Array.from({ length: parts }, () => total / parts);
}

/** Start offsets along the split dim, one per device, from the sizes. */
export function splitOffsets(sizes: readonly number[]): number[] {
  const offsets: number[] = [];
  let at = 0;
  for (const s of sizes) {
    offsets.push(at);
    at += s;
  }
  return offsets;
}

/** Checks a placement against a global shape and group size; returns the shard sizes for a Shard. */
export function checkPlacement(
  globalShape: Shape,
  placement: Placement,
  groupSize: number,
  where: string,
): number[] | null {
  if (placement.kind !== 'shard') return null;
  const { dim } = placement;
  if (!Number.isSafeInteger(dim) || dim < 0 || dim >= globalShape.length) {
    throw new ParallelError('SHAPE', `cannot shard dim ${dim} of shape ${formatShape(globalShape)}`, {
      where,
    });
  }
  return splitSizes(globalShape[dim]!, groupSize, placement.sizes, where);
}

/** The shape device `rank` holds under the placement. */
export function localShape(
  globalShape: Shape,
  placement: Placement,
  groupSize: number,
  rank: number,
): number[] {
  const sizes = checkPlacement(globalShape, placement, groupSize, 'localShape');
  if (!sizes || placement.kind !== 'shard') return [...globalShape];
  const shape = [...globalShape];
  shape[placement.dim] = sizes[rank]!;
  return shape;
}

/**
 * A tensor spread over an ordered device group: shard `r` lives on `group.devices[r]`. It owns its shards
 * unless they were passed through unchanged by a redistribution (see `redistribute`).
 */
export class DistributedTensor {
  readonly group: DeviceGroup;
  readonly placement: Placement;
  readonly globalShape: Shape;
  readonly shards: readonly Tensor[];

  constructor(group: DeviceGroup, placement: Placement, globalShape: Shape, shards: readonly Tensor[]) {
    const where = `DistributedTensor ${formatShape(globalShape)} ${describePlacement(placement)}`;
    if (shards.length !== group.size) {
      throw new ParallelError('GROUP', `${shards.length} shards for a group of ${group.size} devices`, {
        where,
      });
    }
    checkPlacement(globalShape, placement, group.size, where);
    shards.forEach((shard, rank) => {
      const device = group.devices[rank]!;
      if (shard.device !== device) {
        throw new ParallelError('GROUP', `shard ${rank} lives on ${shard.device.name}, not ${device.name}`, {
          where,
        });
      }
      const want = localShape(globalShape, placement, group.size, rank);
      if (want.length !== shard.shape.length || want.some((d, i) => d !== shard.shape[i])) {
        throw new ParallelError(
          'SHAPE',
          `shard ${rank} has shape ${formatShape(shard.shape)}, want ${formatShape(want)}`,
          {
            where,
          },
        );
      }
    });
    this.group = group;
    this.placement = placement;
    this.globalShape = Object.freeze([...globalShape]);
    this.shards = Object.freeze([...shards]);
  }

  get dtype(): Tensor['dtype'] {
    return this.shards[0]!.dtype;
  }

  describe(): string {
    return `${formatShape(this.globalShape)} ${describePlacement(this.placement)} on ${this.group.describe()}`;
  }

  /** Frees every shard except those in `keep` (shards shared with another distributed tensor). */
  free(keep: readonly Tensor[] = []): void {
    for (const shard of this.shards) if (!keep.includes(shard)) shard.free();
  }

  [Symbol.dispose](): void {
    this.free();
  }
}
