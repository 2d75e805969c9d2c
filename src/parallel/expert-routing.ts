import type { ExpertPlacement } from './expert-placement.js';

/** Where every routed (token, slot) goes, worked out on the host from each group's top-k picks. */
export interface RoutingPlan {
  /** sendIds[g]: rows of group g's token slice to send, grouped by destination group, then expert. */
  readonly sendIds: readonly Uint32Array[];
  /** sendCounts[g][h]: rows group g sends to group h. */
  readonly sendCounts: readonly (readonly number[])[];
  /**
   * expertRows[h][i]: for group h's i-th expert, the rows of what h received (ordered by source group,
   * then expert) that are that expert's input.
   */
  readonly expertRows: readonly (readonly Uint32Array[])[];
  /** returnIds[h]: for each received row, its row in h's expert outputs concatenated in expert order. */
  readonly returnIds: readonly Uint32Array[];
  /**
   * combineIds[g]: for each (token, slot) of g's slice, its row in what g gets back; a dropped one gets
   * the row count, one past the end, which the embedding gather turns into a zero row.
   */
  readonly combineIds: readonly Uint32Array[];
  /** Assignments each expert ran, and dropped over its capacity. */
  readonly perExpert: readonly number[];
  readonly dropped: readonly number[];
}

/**
 * Plans the dispatch of one MoE layer. `picks[g]` are group g's top-k experts, k per token of its slice.
 * With a `capacity`, an expert takes at most that many assignments, first come first served in token order
 * (group 0's tokens first, then group 1's: the tokens' order in the batch) and slot order within a token;
 * the rest are dropped (their terms left out, the other weights not renormalised).
 */
export function planRouting(
  picks: readonly Uint32Array[],
  k: number,
  placement: ExpertPlacement,
  capacity = Number.POSITIVE_INFINITY,
): RoutingPlan {
  const ep = placement.experts.length;
  const numExperts = placement.owner.length;
  const perExpert = new Array<number>(numExperts).fill(0);
  const dropped = new Array<number>(numExperts).fill(0);
  // rows[g][h][i]: tokens of group g for group h's i-th expert, with the slot each came from.
  const rows = picks.map(() =>
    placement.experts.map((list) => list.map(() => [] as { token: number; slot: number }[])),
  );
  picks.forEach((p, g) => {
    for (let slot = 0; slot < p.length; slot++) {
      const e = p[slot]!;
      if (perExpert[e]! >= capacity) {
        dropped[e]!++;
        continue;
      }
      perExpert[e]!++;
      rows[g]![placement.owner[e]!]![placement.localIndex[e]!]!.push({ token: Math.floor(slot / k), slot });
    }
  });

  const sendCounts = rows.map((byGroup) =>
    byGroup.map((byExpert) => byExpert.reduce((n, r) => n + r.length, 0)),
  );
  const sendIds = rows.map((byGroup) => Uint32Array.from(byGroup.flat(2), (r) => r.token));
  const combineIds = picks.map((p, g) => {
    const kept = rows[g]!.flat(2);
    const ids = new Uint32Array(p.length).fill(kept.length);
    kept.forEach((r, at) => {
      ids[r.slot] = at;
    });
    return ids;
  });

  const expertRows: Uint32Array[][] = [];
  const returnIds: Uint32Array[] = [];
  for (let h = 0; h < ep; h++) {
    const local = placement.experts[h]!;
    const byExpert: number[][] = local.map(() => []);
    let received = 0;
    for (let g = 0; g < picks.length; g++) {
      local.forEach((_, i) => {
        for (let n = 0; n < rows[g]![h]![i]!.length; n++) byExpert[i]!.push(received++);
      });
    }
    expertRows.push(byExpert.map((r) => Uint32Array.from(r)));
    const back = new Uint32Array(received);
    let out = 0;
    for (const list of byExpert) for (const r of list) back[r] = out++;
    returnIds.push(back);
  }
  return { sendIds, sendCounts, expertRows, returnIds, combineIds, perExpert, dropped };
}

/** Mixtral-style capacity: ceil(factor · tokens · k / experts) assignments per expert, at least one. */
export function expertCapacity(factor: number, tokens: number, k: number, numExperts: number): number {
  return Math.max(1, Math.ceil((factor * tokens * k) / numExperts));
}
