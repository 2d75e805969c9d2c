import { ParallelError } from '../errors.js';
import { DeviceGroup } from '../runtime/device-group.js';
import { balancedSizes } from './head-split.js';

/**
 * Which experts each expert group holds. A stage's devices split into `ep` consecutive groups of equal
 * size; each expert lives on one group, tensor-parallel over its devices when the group has several.
 */
export interface ExpertPlacement {
  /** experts[g]: the experts group g holds, in the order it runs them. */
  readonly experts: readonly (readonly number[])[];
  /** The group each expert lives on, and its place in that group's list. */
  readonly owner: readonly number[];
  readonly localIndex: readonly number[];
}

/** Even by default (4 experts over 3 groups: [0, 1], [2], [3]); a plan's list is checked to hold each once. */
export function placeExperts(
  numExperts: number,
  ep: number,
  experts?: readonly (readonly number[])[],
  where = 'experts',
): ExpertPlacement {
  const lists =
    experts ??
    (() => {
      let next = 0;
      return balancedSizes(numExperts, ep).map((n) => Array.from({ length: n }, () => next++));
    })();
  if (lists.length !== ep) {
    throw new ParallelError('SPLIT', `${lists.length} expert lists for ${ep} expert groups`, {
      where,
      fix: `give one list of experts per expert group (${ep})`,
    });
  }
  const owner = new Array<number>(numExperts).fill(-1);
  const localIndex = new Array<number>(numExperts).fill(-1);
  lists.forEach((list, g) => {
    list.forEach((e, i) => {
      if (!Number.isSafeInteger(e) || e < 0 || e >= numExperts) {
        throw new ParallelError('SPLIT', `expert ${e} does not exist: the model has ${numExperts}`, {
          where: `${where}[${g}][${i}]`,
          fix: `use experts 0..${numExperts - 1}`,
        });
      }
      if (owner[e] !== -1) {
        throw new ParallelError('SPLIT', `expert ${e} is placed twice (groups ${owner[e]} and ${g})`, {
          where: `${where}[${g}][${i}]`,
          fix: 'place every expert on exactly one group',
        });
      }
      owner[e] = g;
      localIndex[e] = i;
    });
  });
  const missing = owner.indexOf(-1);
  if (missing >= 0) {
    throw new ParallelError('SPLIT', `expert ${missing} is placed on no group`, {
      where,
      fix: 'place every expert on exactly one group',
    });
  }
  return { experts: lists, owner, localIndex };
}

/**
 * The expert groups of a stage's devices (group g: devices g·t .. g·t + t - 1) and its rails (rail i: the
 * i-th device of every group). Tokens move between groups along rails, so each device of a group receives
 * the same rows: an expert's input is then replicated on its group, as a tensor-parallel MLP wants.
 */
export function expertGroups(
  group: DeviceGroup,
  ep: number,
): { groups: DeviceGroup[]; rails: DeviceGroup[] } {
  if (!Number.isSafeInteger(ep) || ep < 1 || group.size % ep !== 0) {
    throw new ParallelError(
      'SPLIT',
      `${group.size} devices do not split into ${ep} expert groups of equal size`,
      {
        where: 'ep',
        fix: `use an expert-parallel size that divides the stage's ${group.size} devices`,
      },
    );
  }
  const t = group.size / ep;
  const groups = Array.from({ length: ep }, (_, g) =>
    DeviceGroup.of(group.devices.slice(g * t, (g + 1) * t)),
  );
  const rails = Array.from({ length: t }, (_, i) => DeviceGroup.of(groups.map((g) => g.devices[i]!)));
  return { groups, rails };
}
