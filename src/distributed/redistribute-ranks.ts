import {
  alignRuns,
  type Box,
  boxElements,
  boxKey,
  boxRuns,
  intersect,
  sameBox,
  shardBox,
} from '../collectives/box.js';
import { DistributedTensor, type Placement, Shard } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { elementCount, type Shape } from '../runtime/tensor.js';
import { recvFrom, sendTo } from './point-to-point.js';
import type { ProcessGroup } from './process-group.js';
import { allGatherAcrossRanks, allReduceAcrossRanks } from './rank-tensors.js';

const BYTES = 4;

/** A whole tensor's layout over an ordered group of devices that may live on several ranks. */
export interface RankLayout {
  /** Device ids, in group order. */
  readonly devices: readonly number[];
  readonly placement: Placement;
}

export interface RankMove {
  readonly pg: ProcessGroup;
  /** The rank that owns each device id. */
  readonly owner: ReadonlyMap<number, number>;
  /** The whole tensor's shape (f32). */
  readonly shape: Shape;
  readonly from: RankLayout;
  readonly to: RankLayout;
  /** This rank's shards of the source, on its devices of `from.devices` in that order (see `localView`). */
  readonly source?: DistributedTensor;
  /** This rank's devices of `to.devices`, in that order. */
  readonly target?: DeviceGroup;
  readonly label: string;
  /** The op the strategy names: an all_reduce or all_gather within one group over every rank takes the ring. */
  readonly op?: string;
}

export interface RankMoveResult {
  /** This rank's shards of the result, as `localView` describes them; undefined where it holds none. */
  readonly output?: DistributedTensor;
  /** Bytes this rank read from its devices to the host and wrote back. */
  readonly hostBytes: number;
  /** Bytes this rank sent to other ranks. */
  readonly wireBytes: number;
}

/**
 * The part of a whole tensor laid out by `layout` that the devices `local` (a subset of its group, in
 * group order) hold, as a tensor of its own: a Shard keeps its dim with the local sizes (the local
 * width is their sum), Replicate and Partial keep the whole shape. A stage split across ranks computes on
 * exactly this on each rank.
 */
export function localView(
  shape: Shape,
  layout: RankLayout,
  local: readonly number[],
): { shape: number[]; placement: Placement } {
  const p = layout.placement;
  if (p.kind !== 'shard') return { shape: [...shape], placement: p };
  const all = shardSizesOf(shape, layout);
  const sizes = local.map((d) => all[layout.devices.indexOf(d)]!);
  const localShape = [...shape];
  localShape[p.dim] = sizes.reduce((a, b) => a + b, 0);
  return { shape: localShape, placement: Shard(p.dim, sizes) };
}

/** The size of the split dim each device of a Shard layout holds. */
function shardSizesOf(shape: Shape, layout: RankLayout): number[] {
  const p = layout.placement;
  if (p.kind !== 'shard') return layout.devices.map(() => shape[0]!);
  const n = layout.devices.length;
  return layout.devices.map((_, i) => {
    const box = shardBox(shape, p, n, i);
    return box.end[p.dim]! - box.start[p.dim]!;
  });
}

/**
 * One box cut from source devices (their indices in the source group): one device's, or for a Partial the
 * sum of every device of one rank, added on that rank's host before it travels (the hierarchical step).
 */
interface Piece {
  readonly sources: readonly number[];
  readonly box: Box;
}

const pieceKey = (p: Piece) => `${p.sources.join(',')}|${boxKey(p.box)}`;

/**
 * Moves a tensor between device groups that span ranks, moving only what each destination reads: every
 * destination box is cut from the source shards that cover it (summed where the source is a Partial),
 * pieces between devices of one rank stay on its host, pieces for another rank go in one point-to-point
 * message per pair of ranks. An all_reduce or all_gather within one group that every rank holds part of
 * goes through the hierarchical collectives across ranks instead (rings on the wire, the host inside each
 * rank). Every rank of the source and destination groups calls it, in the same order of communications.
 */
export async function redistributeAcrossRanks(move: RankMove): Promise<RankMoveResult> {
  const ring = await viaCollective(move);
  if (ring) return ring;
  const { pg, owner, shape, from, to } = move;
  const me = pg.rank;
  const nFrom = from.devices.length;
  const nTo = to.devices.length;
  const sourceBox = (i: number) => shardBox(shape, from.placement, nFrom, i);
  const targetBox = (j: number) => shardBox(shape, to.placement, nTo, j);
  // What each destination device reads, piece by piece, in an order every rank derives alike.
  const needs = to.devices.map((device, j): Piece[] => {
    const box = targetBox(j);
    if (boxElements(box) === 0) return [];
    if (from.placement.kind === 'partial') {
      const byRank = new Map<number, number[]>();
      from.devices.forEach((d, i) => {
        byRank.set(owner.get(d)!, [...(byRank.get(owner.get(d)!) ?? []), i]);
      });
      return [...byRank.values()].map((sources) => ({ sources, box }));
    }
    if (from.placement.kind === 'replicate') {
      const near = from.devices.findIndex((d) => owner.get(d) === owner.get(device));
      return [{ sources: [near >= 0 ? near : j % nFrom], box }];
    }
    return from.devices.flatMap((_, i) => {
      const piece = intersect(sourceBox(i), box);
      return piece && boxElements(piece) > 0 ? [{ sources: [i], box: piece }] : [];
    });
  });
  const messages = new Map<string, Piece[]>();
  to.devices.forEach((device, j) => {
    for (const piece of needs[j]!) {
      const src = owner.get(from.devices[piece.sources[0]!]!)!;
      const dst = owner.get(device)!;
      if (src === dst) continue;
      const key = `${src}>${dst}`;
      const list = messages.get(key) ?? [];
      if (!list.some((p) => pieceKey(p) === pieceKey(piece))) list.push(piece);
      messages.set(key, list);
    }
  });

  const localSources = from.devices.filter((d) => owner.get(d) === me);
  const hostCopies = new Map<number, Float32Array>();
  let hostBytes = 0;
  if (move.source) {
    const wanted = new Set<number>();
    for (const [key, pieces] of messages)
      if (key.startsWith(`${me}>`)) for (const p of pieces) for (const i of p.sources) wanted.add(i);
    to.devices.forEach((device, j) => {
      if (owner.get(device) !== me) return;
      for (const p of needs[j]!) for (const i of p.sources) wanted.add(i);
    });
    await Promise.all(
      localSources.map(async (device, k) => {
        const i = from.devices.indexOf(device);
        if (!wanted.has(i)) return;
        const data = (await move.source!.shards[k]!.device.read(move.source!.shards[k]!)) as Float32Array;
        hostBytes += data.byteLength;
        hostCopies.set(i, data);
      }),
    );
  }
  const cut = (piece: Piece) => {
    const [first, ...rest] = piece.sources as [number, ...number[]];
    const part = copyBox(hostCopies.get(first)!, sourceBox(first), piece.box);
    if (rest.length === 0) return part;
    const sum = Float32Array.from(part);
    for (const i of rest)
      placeBox(sum, piece.box, copyBox(hostCopies.get(i)!, sourceBox(i), piece.box), piece.box, true);
    return sum;
  };

  let wireBytes = 0;
  const sends: Promise<void>[] = [];
  const received = new Map<string, Float32Array>();
  for (let peer = 0; peer < pg.size; peer++) {
    const pieces = messages.get(`${me}>${peer}`);
    if (!pieces) continue;
    const payload = new Float32Array(pieces.reduce((n, p) => n + boxElements(p.box), 0));
    let at = 0;
    for (const p of pieces) {
      payload.set(cut(p), at);
      at += boxElements(p.box);
    }
    wireBytes += payload.byteLength;
    const sent = sendTo(pg, peer, payload);
    // Awaited below; a receive that fails first must not leave this rejection unhandled.
    sent.catch(() => {});
    sends.push(sent);
  }
  for (let peer = 0; peer < pg.size; peer++) {
    const pieces = messages.get(`${peer}>${me}`);
    if (!pieces) continue;
    const payload = await recvFrom(pg, peer);
    let at = 0;
    for (const p of pieces) {
      const n = boxElements(p.box);
      received.set(pieceKey(p), payload.subarray(at, at + n));
      at += n;
    }
  }

  let output: DistributedTensor | undefined;
  if (move.target) {
    const view = localView(
      shape,
      to,
      move.target.devices.map((d) => d.id),
    );
    const shards = move.target.devices.map((device, k) => {
      const j = to.devices.indexOf(device.id);
      const box = targetBox(j);
      const data = new Float32Array(boxElements(box));
      for (const piece of needs[j]!) {
        const local = owner.get(from.devices[piece.sources[0]!]!) === me;
        const part = local ? cut(piece) : received.get(pieceKey(piece))!;
        placeBox(data, box, part, piece.box, from.placement.kind === 'partial');
      }
      hostBytes += data.byteLength;
      return device.upload(
        data,
        view.placement.kind === 'shard' ? boxShape(box) : [...shape],
        `${move.label}[${k}]`,
      );
    });
    output = new DistributedTensor(move.target, view.placement, view.shape, shards);
  }
  move.source?.free();
  await Promise.all(sends);
  return { output, hostBytes, wireBytes };
}

/**
 * The hierarchical collectives, where they are exactly the move: a sum (all_reduce) or a join along the
 * split dim (all_gather) within one group whose devices every rank holds a part of, each rank's part a
 * contiguous run of the group in rank order, equal across ranks for a join.
 */
async function viaCollective(move: RankMove): Promise<RankMoveResult | null> {
  const { pg, owner, from, to, source } = move;
  const sameGroup =
    from.devices.length === to.devices.length && from.devices.every((d, i) => d === to.devices[i]);
  if (!sameGroup || to.placement.kind !== 'replicate' || !source) return null;
  const ranks = from.devices.map((d) => owner.get(d)!);
  const inOrder = ranks.every((r, i) => i === 0 || r >= ranks[i - 1]!);
  if (!inOrder || new Set(ranks).size !== pg.size) return null;
  const read = source.shards.reduce((n, s) => n + elementCount(s.shape) * BYTES, 0);
  const whole = elementCount(move.shape) * BYTES;
  // Host bytes: the local shards read, the result written to every local device.
  const hostBytes = read + whole * source.group.size;
  const n = pg.size;
  if (move.op === 'all_reduce' && from.placement.kind === 'partial') {
    const output = await allReduceAcrossRanks(pg, source, move.label);
    source.free();
    return { output, hostBytes, wireBytes: (2 * (n - 1) * whole) / n };
  }
  if (move.op === 'all_gather' && from.placement.kind === 'shard') {
    const dim = from.placement.dim;
    const widths = new Map<number, number>();
    const sizes = shardSizesOf(move.shape, from);
    ranks.forEach((r, i) => {
      widths.set(r, (widths.get(r) ?? 0) + sizes[i]!);
    });
    if (new Set(widths.values()).size !== 1) return null;
    const output = await allGatherAcrossRanks(pg, source, dim, move.label);
    source.free();
    return { output, hostBytes, wireBytes: ((n - 1) * whole) / n };
  }
  return null;
}

function boxShape(box: Box): number[] {
  return box.start.map((s, i) => box.end[i]! - s);
}

/** The elements of `box` from a row-major array holding `container`, as a row-major array of its own. */
function copyBox(data: Float32Array, container: Box, box: Box): Float32Array {
  if (sameBox(container, box)) return data;
  const out = new Float32Array(boxElements(box));
  const whole = { start: box.start, end: box.end };
  for (const seg of alignRuns(boxRuns(box, container), boxRuns(box, whole)))
    out.set(data.subarray(seg.srcOffset, seg.srcOffset + seg.count), seg.dstOffset);
  return out;
}

/** Writes (or adds, for a sum) the row-major `part` of `box` into `data`, which holds `container`. */
function placeBox(data: Float32Array, container: Box, part: Float32Array, box: Box, sum: boolean): void {
  for (const seg of alignRuns(boxRuns(box, box), boxRuns(box, container))) {
    if (!sum) {
      data.set(part.subarray(seg.srcOffset, seg.srcOffset + seg.count), seg.dstOffset);
      continue;
    }
    for (let k = 0; k < seg.count; k++) data[seg.dstOffset + k]! += part[seg.srcOffset + k]!;
  }
}
