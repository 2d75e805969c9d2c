import { DistributedTensor, Replicate, Shard, splitOffsets } from '../collectives/layout.js';
import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { formatShape, type Shape } from '../runtime/tensor.js';
import { ShardReader } from './shard-reader.js';
import type { WeightReader } from './weight-reader.js';

/**
 * Each device reads its own part of a stored parameter and uploads it: host memory while loading stays
 * near one shard. Hugging Face linear weights are [out, in]; the layers take [in, out], so a shard is
 * transposed on the host after its slice is read. Slices are read into a ShardReader's reused buffers
 * (upload copies), so a load leaves no garbage behind per tensor.
 */

/** A run of consecutive rows (or columns) of a stored tensor. */
export interface Span {
  readonly start: number;
  readonly length: number;
}

function shapeOf(reader: WeightReader, name: string, rank: number): Shape {
  const { shape } = reader.info(name);
  if (shape.length !== rank) {
    throw new ParallelError('CHECKPOINT', `'${name}' has shape ${formatShape(shape)}, want ${rank} dims`, {
      where: name,
    });
  }
  return shape;
}

export function expectShape(reader: WeightReader, name: string, want: Shape): void {
  const { shape } = reader.info(name);
  if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
    throw new ParallelError(
      'CHECKPOINT',
      `'${name}' has shape ${formatShape(shape)}, the config needs ${formatShape(want)}`,
      {
        where: name,
        fix: 'check that config.json belongs to these weights',
      },
    );
  }
}

/** The rows of `spans`, read slice by slice and joined, as [rows, cols] (in the reader's read buffer). */
function readRows(reader: ShardReader, name: string, spans: readonly Span[], cols: number): Float32Array {
  const out = reader.buffer('read', spans.reduce((n, s) => n + s.length, 0) * cols);
  let at = 0;
  for (const span of spans) {
    reader.readF32(name, { dim: 0, ...span }, out.subarray(at, at + span.length * cols));
    at += span.length * cols;
  }
  return out;
}

/**
 * A column-parallel weight from a Hugging Face [out, in] tensor: rank r reads the output rows in `spans[r]`
 * and holds them as [in, rows], so the result is [in, Σ rows] sharded on dim 1.
 */
export function loadColumnParallel(
  source: WeightReader,
  name: string,
  group: DeviceGroup,
  spans: readonly (readonly Span[])[],
): DistributedTensor {
  const reader = ShardReader.of(source);
  const [, inFeatures] = shapeOf(reader, name, 2) as [number, number];
  const sizes = spans.map((runs) => runs.reduce((n, s) => n + s.length, 0));
  const shards = group.devices.map((device, r) => {
    const rows = readRows(reader, name, spans[r]!, inFeatures);
    return device.upload(
      reader.transposed(rows, sizes[r]!, inFeatures),
      [inFeatures, sizes[r]!],
      `${name}[${r}]`,
    );
  });
  return new DistributedTensor(
    group,
    Shard(1, sizes),
    [inFeatures, sizes.reduce((a, b) => a + b, 0)],
    shards,
  );
}

/** One contiguous span per rank, from split sizes. */
export function spansOf(sizes: readonly number[], unit = 1): Span[][] {
  return splitOffsets(sizes).map((start, r) => [{ start: start * unit, length: sizes[r]! * unit }]);
}

/**
 * A row-parallel weight from a Hugging Face [out, in] tensor: rank r reads the input columns of its size and
 * holds them as [columns, out], so the result is [in, out] sharded on dim 0.
 */
export function loadRowParallel(
  source: WeightReader,
  name: string,
  group: DeviceGroup,
  sizes: readonly number[],
): DistributedTensor {
  const reader = ShardReader.of(source);
  const [outFeatures, inFeatures] = shapeOf(reader, name, 2) as [number, number];
  const offsets = splitOffsets(sizes);
  const shards = group.devices.map((device, r) => {
    const cols = reader.readSlice(name, { dim: 1, start: offsets[r]!, length: sizes[r]! });
    return device.upload(
      reader.transposed(cols, outFeatures, sizes[r]!),
      [sizes[r]!, outFeatures],
      `${name}[${r}]`,
    );
  });
  return new DistributedTensor(group, Shard(0, sizes), [inFeatures, outFeatures], shards);
}

/** A stored tensor's rows split over the group as they are stored (a vocab-parallel embedding table). */
export function loadRowShards(
  source: WeightReader,
  name: string,
  group: DeviceGroup,
  sizes: readonly number[],
): DistributedTensor {
  const reader = ShardReader.of(source);
  const shape = reader.info(name).shape;
  const offsets = splitOffsets(sizes);
  const shards = group.devices.map((device, r) => {
    const local = [sizes[r]!, ...shape.slice(1)];
    return device.upload(
      reader.readSlice(name, { dim: 0, start: offsets[r]!, length: sizes[r]! }),
      local,
      `${name}[${r}]`,
    );
  });
  return new DistributedTensor(group, Shard(0, sizes), shape, shards);
}

/** The whole tensor on every device of the group (norm weights). */
export function loadReplicated(source: WeightReader, name: string, group: DeviceGroup): DistributedTensor {
  const reader = ShardReader.of(source);
  const { shape } = reader.info(name);
  const data = reader.readSlice(name);
  const shards = group.devices.map((device, r) => device.upload(data, shape, `${name}[${r}]`));
  return new DistributedTensor(group, Replicate(), shape, shards);
}
