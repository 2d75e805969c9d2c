import type { Shape } from '../runtime/tensor.js';
import { checkPlacement, type Placement, splitOffsets } from './layout.js';

/** A box in global coordinates: [start, end) per dim. Shards, pieces and targets are all boxes. */
export interface Box {
  readonly start: readonly number[];
  readonly end: readonly number[];
}

/** A contiguous run of elements inside one tensor's storage. */
export interface Run {
  readonly offset: number;
  readonly count: number;
}

/** A run copied from one tensor's storage to another's. */
export interface Segment {
  readonly srcOffset: number;
  readonly dstOffset: number;
  readonly count: number;
}

export function fullBox(shape: Shape): Box {
  return { start: shape.map(() => 0), end: [...shape] };
}

/** The box device `rank` holds under the placement (the whole tensor for Replicate and Partial). */
export function shardBox(globalShape: Shape, placement: Placement, groupSize: number, rank: number): Box {
  const sizes = checkPlacement(globalShape, placement, groupSize, 'shardBox');
  const box = fullBox(globalShape);
  if (!sizes || placement.kind !== 'shard') return box;
  const start = [...box.start];
  const end = [...box.end];
  start[placement.dim] = splitOffsets(sizes)[rank]!;
  end[placement.dim] = start[placement.dim]! + sizes[rank]!;
  return { start, end };
}

export function intersect(a: Box, b: Box): Box | null {
  const start = a.start.map((s, i) => Math.max(s, b.start[i]!));
  const end = a.end.map((e, i) => Math.min(e, b.end[i]!));
  return start.some((s, i) => s >= end[i]!) ? null : { start, end };
}

export function sameBox(a: Box, b: Box): boolean {
  return a.start.every((s, i) => s === b.start[i]) && a.end.every((e, i) => e === b.end[i]);
}

export function boxElements(box: Box): number {
  return box.start.reduce((n, s, i) => n * (box.end[i]! - s), 1);
}

export function boxKey(box: Box): string {
  return `${box.start.join(',')}:${box.end.join(',')}`;
}

/**
 * The runs, in row-major order of `box`, that `box` occupies inside a row-major tensor holding `container`.
 * Adjacent runs merge, so a box that spans whole trailing dims is one run however many rows it has.
 */
export function boxRuns(box: Box, container: Box): Run[] {
  // An empty box occupies nothing (the walk below would emit one run before it looks at the extents).
  if (boxElements(box) === 0) return [];
  const rank = box.start.length;
  const dims = container.start.map((s, i) => container.end[i]! - s);
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1]! * dims[i + 1]!;
  const extent = box.start.map((s, i) => box.end[i]! - s);
  const lo = box.start.map((s, i) => s - container.start[i]!);
  const inner = extent[rank - 1]!;
  const runs: Run[] = [];
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (;;) {
    let offset = lo[rank - 1]!;
    for (let i = 0; i < rank - 1; i++) offset += (lo[i]! + index[i]!) * strides[i]!;
    const last = runs[runs.length - 1];
    if (last && last.offset + last.count === offset)
      runs[runs.length - 1] = { offset: last.offset, count: last.count + inner };
    else runs.push({ offset, count: inner });
    let d = rank - 2;
    while (d >= 0) {
      index[d]!++;
      if (index[d]! < extent[d]!) break;
      index[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return runs;
}

/** Pairs two run lists that enumerate the same elements in the same order into copy segments. */
export function alignRuns(src: readonly Run[], dst: readonly Run[]): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  let j = 0;
  let si = 0;
  let dj = 0;
  while (i < src.length && j < dst.length) {
    const a = src[i]!;
    const b = dst[j]!;
    const count = Math.min(a.count - si, b.count - dj);
    out.push({ srcOffset: a.offset + si, dstOffset: b.offset + dj, count });
    si += count;
    dj += count;
    if (si === a.count) {
      i++;
      si = 0;
    }
    if (dj === b.count) {
      j++;
      dj = 0;
    }
  }
  return out;
}
