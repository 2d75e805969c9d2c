/**
 * Stages whose devices share one adapter's cores, as processor sharing: stages that run at once split the
 * cores, each at `min(1, capacity / active)` of the speed it has alone. A capacity of 1 is a machine
 * whose work is the same however it overlaps (only the total counts); a capacity of the stage count is
 * devices of their own (fill-drain). Lavapipe on 2 cores measures between the two (bench/RESULTS.md,
 * "Strategies"): overlapping stages gains some throughput, and a stage left alone runs faster, so an
 * uneven split of the layers costs less than fill-drain says but more than nothing.
 */

import { median } from '../stats.js';

/** A stage's speed, as a share of its speed alone, while `active` stages run at once. */
export function shareOfCores(capacity: number, active: number): number {
  return Math.min(1, capacity / Math.max(1, active));
}

/**
 * The time for stages that start together with `works` ms of work each (their times alone): all run at
 * the shared speed until the smallest is done, then the rest share the cores among fewer, and so on.
 */
export function sharedStepMs(works: readonly number[], capacity: number): number {
  const sorted = [...works].sort((a, b) => a - b);
  let time = 0;
  let done = 0;
  sorted.forEach((work, k) => {
    time += (work - done) / shareOfCores(capacity, sorted.length - k);
    done = work;
  });
  return time;
}

/**
 * How many compute stages run while stage `stage` runs microbatch `microbatch`, in a fill-drain of
 * `stages` stages over `microbatches`: stage s runs microbatch j at step s + j.
 */
export function activeStages(
  stage: number,
  microbatch: number,
  stages: number,
  microbatches: number,
): number {
  const step = stage + microbatch;
  let n = 0;
  for (let s = 0; s < stages; s++) if (step - s >= 0 && step - s < microbatches) n++;
  return n;
}

/** A fill-drain of stages with these works per microbatch (times alone), step by step, sharing the cores. */
export function sharedFillDrainMs(works: readonly number[], microbatches: number, capacity: number): number {
  let total = 0;
  for (let step = 0; step < microbatches + works.length - 1; step++) {
    const running = works.filter((_, s) => step - s >= 0 && step - s < microbatches);
    total += sharedStepMs(running, capacity);
  }
  return total;
}

/**
 * The cores' capacity, from one run's per-microbatch stage times: a stage's microbatch that ran alone
 * (the first stage's first, the last stage's last) against those that ran beside every other stage.
 * Null where the run has no such pair (one stage, or one microbatch).
 */
export function measureCapacity(perMicrobatchMs: readonly (readonly number[])[]): number | null {
  const stages = perMicrobatchMs.length;
  const m = perMicrobatchMs[0]?.length ?? 0;
  if (stages < 2 || m < 2) return null;
  const ratios: number[] = [];
  let together = 0;
  perMicrobatchMs.forEach((times, s) => {
    const alone = times.filter((_, j) => activeStages(s, j, stages, m) === 1);
    const most = Math.max(...times.map((_, j) => activeStages(s, j, stages, m)));
    const shared = times.filter((_, j) => activeStages(s, j, stages, m) === most);
    if (alone.length === 0 || most < 2 || shared.length === 0) return;
    together = most;
    ratios.push(median(alone) / median(shared));
  });
  if (ratios.length === 0) return null;
  return Math.min(stages, Math.max(1, median(ratios) * together));
}

/** A stage's per-microbatch times as they would be alone: each divided by its share of the cores then. */
export function aloneMs(times: readonly number[], stage: number, stages: number, capacity: number): number[] {
  return times.map((t, j) => t * shareOfCores(capacity, activeStages(stage, j, stages, times.length)));
}
