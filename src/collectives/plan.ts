import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import type { Shape } from '../runtime/tensor.js';
import {
  alignRuns,
  type Box,
  boxElements,
  boxKey,
  boxRuns,
  intersect,
  type Run,
  type Segment,
  sameBox,
  shardBox,
} from './box.js';
import { describePlacement, type Placement } from './layout.js';

/** One side of a layout change: which devices, in which order, hold what. */
export interface LayoutSide {
  readonly devices: readonly Device[];
  readonly placement: Placement;
}

/** A box read once from one source device to the host. */
export interface ReadPiece {
  readonly srcRank: number;
  readonly box: Box;
  /** Where the box lies in the source shard's storage. */
  readonly runs: readonly Run[];
  readonly elements: number;
}

/** Host data (a piece, or a reduction's sum) written into a destination shard. */
export interface HostWrite {
  readonly dstRank: number;
  /** Where the box lies in the destination shard's storage, in the box's row-major order. */
  readonly runs: readonly Run[];
}

/** A copy inside one device: the device is in both groups and already holds part of what it needs. */
export interface LocalCopy {
  readonly srcRank: number;
  readonly dstRank: number;
  /** The box copied, in global coordinates. */
  readonly box: Box;
  readonly segments: readonly Segment[];
  readonly elements: number;
}

/** A Partial(sum) box summed on the host from one piece per source and written to every destination. */
export interface HostReduction {
  readonly box: Box;
  readonly pieces: readonly number[];
  readonly writes: readonly HostWrite[];
}

/** A Partial(sum) summed on a destination device from operands placed there first. */
export interface DeviceReduction {
  readonly dstRank: number;
  /** Per source: the source shard itself (same device, same box), a local copy, or a piece sent over the host. */
  readonly operands: readonly (
    | { kind: 'alias'; srcRank: number }
    | { kind: 'local'; copy: LocalCopy }
    | { kind: 'piece'; piece: number }
  )[];
}

/**
 * The whole data movement of a layout change, as pure data: which boxes are read from which source (each
 * once), where they are written, which destinations keep a source shard as it is (`alias`), and how partial
 * sums are formed. Tested alone; `redistribute` only carries it out.
 */
export interface TransferPlan {
  readonly globalShape: Shape;
  readonly pieces: readonly ReadPiece[];
  /** Per piece: the destinations it is written to (copy pieces only). */
  readonly pieceWrites: readonly (readonly HostWrite[])[];
  readonly localCopies: readonly LocalCopy[];
  /** Per destination rank: the source rank whose shard it keeps unchanged, or null. */
  readonly alias: readonly (number | null)[];
  readonly hostReductions: readonly HostReduction[];
  readonly deviceReductions: readonly DeviceReduction[];
}

export function planElementsToHost(plan: TransferPlan): number {
  return plan.pieces.reduce((n, p) => n + p.elements, 0);
}

export function planElementsFromHost(plan: TransferPlan): number {
  let n = 0;
  plan.pieces.forEach((p, i) => {
    n += p.elements * plan.pieceWrites[i]!.length;
  });
  for (const r of plan.hostReductions) n += boxElements(r.box) * r.writes.length;
  return n;
}

class PieceTable {
  readonly pieces: ReadPiece[] = [];
  readonly writes: HostWrite[][] = [];
  private readonly index = new Map<string, number>();

  constructor(
    private readonly shape: Shape,
    private readonly src: LayoutSide,
  ) {}

  /** The piece reading `box` from source `srcRank`, if some destination needs it already. */
  find(srcRank: number, box: Box): number | undefined {
    return this.index.get(`${srcRank}/${boxKey(box)}`);
  }

  /** The piece reading `box` from source `srcRank`, created once however many destinations need it. */
  get(srcRank: number, box: Box): number {
    const key = `${srcRank}/${boxKey(box)}`;
    let i = this.index.get(key);
    if (i === undefined) {
      const container = shardBox(this.shape, this.src.placement, this.src.devices.length, srcRank);
      i = this.pieces.length;
      this.pieces.push({ srcRank, box, runs: boxRuns(box, container), elements: boxElements(box) });
      this.writes.push([]);
      this.index.set(key, i);
    }
    return i;
  }
}

function localCopy(
  shape: Shape,
  src: LayoutSide,
  dst: LayoutSide,
  srcRank: number,
  dstRank: number,
  box: Box,
): LocalCopy {
  const srcBox = shardBox(shape, src.placement, src.devices.length, srcRank);
  const dstBox = shardBox(shape, dst.placement, dst.devices.length, dstRank);
  return {
    srcRank,
    dstRank,
    box,
    segments: alignRuns(boxRuns(box, srcBox), boxRuns(box, dstBox)),
    elements: boxElements(box),
  };
}

export interface PlanOptions {
  /**
   * A destination that already holds exactly its box keeps that shard, with no copy (off when writing into
   * outputs the caller gave).
   */
  readonly keepInPlace?: boolean;
  /**
   * Per destination rank: write what it holds itself from the host, where the host reads that box anyway
   * for another destination, instead of copying it on the device. For outputs that the host writes
   * straight into memory (see BufferUses): one copy on the device would send every later host write into
   * them through the driver's upload ring.
   */
  readonly localThroughHost?: readonly boolean[];
}

/** Plans moving a tensor of `globalShape` from the `src` layout to the `dst` layout. */
export function planTransfer(
  globalShape: Shape,
  src: LayoutSide,
  dst: LayoutSide,
  reduceOnHost: boolean,
  options: PlanOptions = {},
): TransferPlan {
  const keepInPlace = options.keepInPlace ?? true;
  if (dst.placement.kind === 'partial' && src.placement.kind !== 'partial') {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `cannot turn ${describePlacement(src.placement)} into Partial(sum): nothing needs summing`,
      { where: 'redistribute' },
    );
  }
  const nSrc = src.devices.length;
  const nDst = dst.devices.length;
  const table = new PieceTable(globalShape, src);
  const localCopies: LocalCopy[] = [];
  const alias: (number | null)[] = new Array(nDst).fill(null);
  const hostReductions: HostReduction[] = [];
  const deviceReductions: DeviceReduction[] = [];
  const srcBoxes = src.devices.map((_, r) => shardBox(globalShape, src.placement, nSrc, r));
  const summing = src.placement.kind === 'partial' && (nSrc > 1 || dst.placement.kind === 'partial');

  if (dst.placement.kind === 'partial') {
    // Partial -> Partial only as the identity: a partial sum cannot be re-split without summing it.
    const same = nSrc === nDst && src.devices.every((d, i) => d === dst.devices[i]);
    if (!same) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        'a Partial(sum) can only move by reducing it (allReduce, reduce, reduceScatter)',
        {
          where: 'redistribute',
        },
      );
    }
    return {
      globalShape,
      pieces: [],
      pieceWrites: [],
      localCopies,
      alias: src.devices.map((_, r) => r),
      hostReductions,
      deviceReductions,
    };
  }

  const reductions = new Map<string, { box: Box; pieces: number[]; writes: HostWrite[] }>();
  // Parts a destination holds itself, placed once every piece the other destinations need is known.
  const ownParts: { srcRank: number; dstRank: number; box: Box; want: Box }[] = [];
  for (let j = 0; j < nDst; j++) {
    const device = dst.devices[j]!;
    const want = shardBox(globalShape, dst.placement, nDst, j);
    const localRank = src.devices.indexOf(device);
    // A destination that holds no elements needs nothing: no piece, copy or sum (its empty shard is made new).
    if (boxElements(want) === 0) continue;

    if (summing) {
      if (reduceOnHost) {
        const key = boxKey(want);
        let r = reductions.get(key);
        if (!r) {
          r = { box: want, pieces: src.devices.map((_, i) => table.get(i, want)), writes: [] };
          reductions.set(key, r);
        }
        r.writes.push({ dstRank: j, runs: boxRuns(want, want) });
      } else {
        deviceReductions.push({
          dstRank: j,
          operands: src.devices.map((_, i) => {
            if (i !== localRank) return { kind: 'piece' as const, piece: table.get(i, want) };
            if (keepInPlace && sameBox(srcBoxes[i]!, want)) return { kind: 'alias' as const, srcRank: i };
            return { kind: 'local' as const, copy: localCopy(globalShape, src, dst, i, j, want) };
          }),
        });
      }
      continue;
    }

    // A device that already holds exactly its target box keeps it: no copy at all.
    if (keepInPlace && localRank >= 0 && sameBox(srcBoxes[localRank]!, want)) {
      alias[j] = localRank;
      continue;
    }
    if (src.placement.kind !== 'shard') {
      // Replicate (or a single Partial): the whole tensor is on every source; read from this device if it is
      // one, else always from the first source, so that a box several destinations need is read once.
      if (localRank >= 0) ownParts.push({ srcRank: localRank, dstRank: j, box: want, want });
      else table.writes[table.get(0, want)]!.push({ dstRank: j, runs: boxRuns(want, want) });
      continue;
    }
    for (let i = 0; i < nSrc; i++) {
      const part = intersect(want, srcBoxes[i]!);
      if (!part) continue;
      if (i === localRank) ownParts.push({ srcRank: i, dstRank: j, box: part, want });
      else table.writes[table.get(i, part)]!.push({ dstRank: j, runs: boxRuns(part, want) });
    }
  }
  for (const { srcRank, dstRank, box, want } of ownParts) {
    const piece = options.localThroughHost?.[dstRank] ? table.find(srcRank, box) : undefined;
    if (piece !== undefined) table.writes[piece]!.push({ dstRank, runs: boxRuns(box, want) });
    else localCopies.push(localCopy(globalShape, src, dst, srcRank, dstRank, box));
  }
  for (const r of reductions.values()) hostReductions.push(r);
  return {
    globalShape,
    pieces: table.pieces,
    pieceWrites: table.writes,
    localCopies,
    alias,
    hostReductions,
    deviceReductions,
  };
}
