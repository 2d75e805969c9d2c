import { splitOffsets, splitSizes } from '../collectives/layout.js';
import { ParallelError } from '../errors.js';

/** The attention heads one tensor-parallel rank computes. */
export interface RankHeads {
  /** Its query heads: [qStart, qStart + qCount) of the model's. */
  readonly qStart: number;
  readonly qCount: number;
  /**
   * The model's KV head behind each local KV slot, in order. Where the split keeps whole KV groups these
   * are distinct; where it cuts one, every local query head gets a slot of its own (KV heads repeated).
   */
  readonly kvHeads: readonly number[];
  /** Local query heads per local KV slot: query head j reads slot floor(j / group). */
  readonly group: number;
}

/** `total` split over `parts` as evenly as can be, the first ranks taking one more where it does not divide. */
export function balancedSizes(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, r) => base + (r < total % parts ? 1 : 0));
}

/**
 * Megatron's attention split: whole query heads per rank (evenly where they divide, else as evenly as they
 * can, or by `sizes`), each rank holding the KV heads its query heads read (grouped-query attention: query
 * head h reads KV head floor(h / (heads / kvHeads))), replicated where ranks share one.
 */
export function splitHeads(
  numHeads: number,
  numKvHeads: number,
  ranks: number,
  sizes?: readonly number[],
): RankHeads[] {
  if (ranks > numHeads) {
    throw new ParallelError('SPLIT', `${numHeads} attention heads cannot be split over ${ranks} devices`, {
      where: 'attention heads',
      fix: `use a tensor-parallel size of at most ${numHeads}`,
    });
  }
  const counts = splitSizes(numHeads, ranks, sizes ?? balancedSizes(numHeads, ranks), 'attention heads');
  // Shards may be empty in general (splitSizes takes 0), but a rank of the attention group holds heads.
  if (counts.some((c) => c === 0)) {
    throw new ParallelError('SPLIT', `head sizes [${counts.join(', ')}] leave a device without heads`, {
      where: 'attention heads',
      fix: 'give every device of the tensor-parallel group at least one head',
    });
  }
  const perKv = numHeads / numKvHeads;
  return splitOffsets(counts).map((qStart, r) => {
    const qCount = counts[r]!;
    const kvOfQuery = Array.from({ length: qCount }, (_, j) => Math.floor((qStart + j) / perKv));
    const distinct = [...new Set(kvOfQuery)];
    const even = distinct.every(
      (kv) => kvOfQuery.filter((k) => k === kv).length === qCount / distinct.length,
    );
    return even
      ? { qStart, qCount, kvHeads: distinct, group: qCount / distinct.length }
      : { qStart, qCount, kvHeads: kvOfQuery, group: 1 };
  });
}
