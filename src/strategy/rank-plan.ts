import type { Finding } from './findings.js';
import { evenSizes, type StagePlan } from './model-plan.js';

/** What the rank checks read of either form of strategy file. */
export interface RankedStrategy {
  readonly hardware: { readonly device_count: number };
  readonly ranks?: readonly (readonly number[])[];
}

/**
 * The devices each rank of a world of `worldSize` owns: the file's `ranks`, or device_count split evenly
 * over the ranks in order (the earlier ranks take the remainder), as the launcher's split of a host's
 * devices over its local ranks.
 */
export function rankDevices(strategy: RankedStrategy, worldSize: number): number[][] {
  if (strategy.ranks) return strategy.ranks.map((r) => [...r]);
  const sizes = evenSizes(strategy.hardware.device_count, worldSize);
  let next = 0;
  return sizes.map((n) => Array.from({ length: n }, () => next++));
}

/** The rank that owns each device id. */
export function rankOfDevice(ranks: readonly (readonly number[])[]): Map<number, number> {
  const owner = new Map<number, number>();
  ranks.forEach((devices, rank) => {
    for (const d of devices) owner.set(d, rank);
  });
  return owner;
}

/** The file's `ranks`, checked alone: every device on exactly one rank, no id past device_count. */
export function checkRanksSection(strategy: RankedStrategy, add: (f: Finding) => void): void {
  const ranks = strategy.ranks;
  if (!ranks) return;
  const count = strategy.hardware.device_count;
  const seen = new Map<number, string>();
  ranks.forEach((devices, r) => {
    devices.forEach((d, i) => {
      const path = `$.ranks[${r}][${i}]`;
      if (d >= count) {
        add({
          code: 'RANKS_DEVICE_OUT_OF_RANGE',
          severity: 'error',
          path,
          message: `rank ${r} lists device ${d}, but hardware.device_count is ${count} (ids 0..${count - 1})`,
          fix: `use ids below ${count}, or raise hardware.device_count`,
        });
        return;
      }
      const first = seen.get(d);
      if (first) {
        add({
          code: 'RANKS_DEVICE_TWICE',
          severity: 'error',
          path,
          message: `device ${d} is on two ranks (also at ${first}); a device belongs to one process`,
          fix: `keep device ${d} on one rank`,
        });
      } else seen.set(d, path);
    });
  });
  const missing = Array.from({ length: count }, (_, d) => d).filter((d) => !seen.has(d));
  if (missing.length > 0) {
    add({
      code: 'RANKS_DEVICE_MISSING',
      severity: 'error',
      path: '$.ranks',
      message: `device${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} on no rank`,
      fix: `add ${missing.join(', ')} to a rank's list, or lower hardware.device_count`,
    });
  }
}

/**
 * The checks that need the world's size (known only at run time) and what this runner can split across
 * processes: a chain stage's column or row split may span ranks (each rank runs its devices' shards), a
 * replicated stage or a vocab-parallel embedding must sit on one rank.
 */
export function worldFindings(
  strategy: RankedStrategy,
  plans: readonly StagePlan[],
  worldSize: number,
): Finding[] {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const count = strategy.hardware.device_count;
  if (strategy.ranks && strategy.ranks.length !== worldSize) {
    add({
      code: 'RANKS_WORLD_SIZE',
      severity: 'error',
      path: '$.ranks',
      message: `the file assigns devices to ${strategy.ranks.length} ranks, but the world has ${worldSize} (WORLD_SIZE)`,
      fix: `launch ${strategy.ranks.length} ranks (--nprocs ${strategy.ranks.length}), or give one list per rank`,
    });
    return findings;
  }
  if (!strategy.ranks && worldSize > count) {
    add({
      code: 'RANKS_WORLD_SIZE',
      severity: 'error',
      path: '$.hardware.device_count',
      message: `${worldSize} ranks cannot split ${count} devices: a rank would own none`,
      fix: `launch at most ${count} ranks, or raise hardware.device_count`,
    });
    return findings;
  }
  checkRanksSection(strategy, add);
  if (findings.length > 0) return findings;
  const owner = rankOfDevice(rankDevices(strategy, worldSize));
  const ranksOf = (devices: readonly number[]) => new Set(devices.map((d) => owner.get(d)!));
  for (const plan of plans) {
    const spans = ranksOf(plan.devices).size > 1;
    const vocab = plan.kind === 'embedding' && plan.mode === 'row';
    if (spans && (plan.mode === 'replicas' || vocab)) {
      add({
        code: 'RANKS_STAGE_SPLIT',
        severity: 'error',
        path: plan.path,
        message: `stage '${plan.spec.name}' (${vocab ? 'a vocab-parallel embedding' : 'data-parallel replicas'}) spans ranks ${[...ranksOf(plan.devices)].join(', ')}; only column and row splits of linear and column embeddings run across processes`,
        fix: `put devices ${plan.devices.join(', ')} on one rank in $.ranks, or split the stage by columns`,
      });
    }
  }
  const last = plans[plans.length - 1];
  if (last && last.mode === 'row' && ranksOf(last.devices).size > 1) {
    add({
      code: 'RANKS_STAGE_SPLIT',
      severity: 'error',
      path: last.path,
      message: `the last stage '${last.spec.name}' leaves partial sums on several ranks; its output has no communication to sum it`,
      fix: 'put the last stage on one rank, or add a stage after it',
    });
  }
  return findings;
}
