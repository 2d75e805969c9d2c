import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { checkFills, elementCount, type HostArray, type Shape, type Tensor } from '../runtime/tensor.js';
import { boxRuns, fullBox, shardBox } from './box.js';
import { sumInto } from './host-sum.js';
import { checkPlacement, DistributedTensor, localShape, type Placement } from './layout.js';

function like(data: HostArray, n: number): HostArray {
  return data instanceof Uint32Array ? new Uint32Array(n) : new Float32Array(n);
}

/**
 * Splits a host tensor over a group by the placement and uploads each device's part. A Partial(sum) puts
 * the values on the first device and zeros on the others, which sums to the same tensor.
 */
export function shardFromHost(
  group: DeviceGroup,
  data: HostArray,
  shape: Shape,
  placement: Placement,
  label = 'sharded',
): DistributedTensor {
  checkFills(data, shape, label);
  checkPlacement(shape, placement, group.size, label);
  const whole = fullBox(shape);
  const shards = perDeviceOrFree(group, (device, rank) => {
    const local = localShape(shape, placement, group.size, rank);
    if (placement.kind === 'partial' && rank > 0)
      return device.upload(like(data, data.length), local, `${label}[${rank}]`);
    const runs = boxRuns(shardBox(shape, placement, group.size, rank), whole);
    const part =
      runs.length === 1
        ? data.subarray(runs[0]!.offset, runs[0]!.offset + runs[0]!.count)
        : like(data, elementCount(local));
    if (runs.length > 1) {
      let at = 0;
      for (const run of runs) {
        part.set(data.subarray(run.offset, run.offset + run.count), at);
        at += run.count;
      }
    }
    return device.upload(part, local, `${label}[${rank}]`);
  });
  return new DistributedTensor(group, placement, shape, shards);
}

/** One tensor made on each device in turn; where one cannot be made, those made before are freed. */
export function perDeviceOrFree(
  group: DeviceGroup,
  make: (device: Device, rank: number) => Tensor,
): Tensor[] {
  const made: Tensor[] = [];
  try {
    for (const [rank, device] of group.devices.entries()) made.push(make(device, rank));
  } catch (error) {
    for (const t of made) t.free();
    throw error;
  }
  return made;
}

/** Uploads one host array per device as that device's shard (a test sets up each rank's value this way). */
export function distributedFromShards(
  group: DeviceGroup,
  placement: Placement,
  shape: Shape,
  perDevice: readonly HostArray[],
  label = 'sharded',
): DistributedTensor {
  if (perDevice.length !== group.size) {
    throw new ParallelError('GROUP', `${perDevice.length} arrays for a group of ${group.size} devices`, {
      where: label,
    });
  }
  const shards = perDeviceOrFree(group, (device, rank) =>
    device.upload(perDevice[rank]!, localShape(shape, placement, group.size, rank), `${label}[${rank}]`),
  );
  return new DistributedTensor(group, placement, shape, shards);
}

/** Reads a distributed tensor back into one host array: shards reassembled, partials summed. */
export async function gatherToHost(dt: DistributedTensor): Promise<HostArray> {
  const shape = dt.globalShape;
  if (dt.placement.kind === 'replicate') return dt.shards[0]!.read();
  const parts = await Promise.all(dt.shards.map((s) => s.read()));
  if (dt.placement.kind === 'partial') {
    const out = new Float32Array(elementCount(shape));
    sumInto(out, parts as Float32Array[]);
    return out;
  }
  const out = like(parts[0]!, elementCount(shape));
  const whole = fullBox(shape);
  parts.forEach((part, rank) => {
    let at = 0;
    for (const run of boxRuns(shardBox(shape, dt.placement, dt.group.size, rank), whole)) {
      out.set(part.subarray(at, at + run.count), run.offset);
      at += run.count;
    }
  });
  return out;
}
