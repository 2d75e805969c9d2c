import { ParallelError } from '../errors.js';
import { balancedSizes } from '../parallel/head-split.js';

/** One pipeline stage: a tensor-parallel group of devices and the consecutive layers it runs. */
export interface StageSpec {
  /** Indexes into the opened device group. */
  readonly devices: readonly number[];
  /** How many decoder layers, following the previous stage's. */
  readonly layers: number;
  /** Query heads per device (uneven on purpose, e.g. a slower device takes fewer); absent: balanced. */
  readonly heads?: readonly number[];
  /** MLP intermediate columns per device; absent: balanced. */
  readonly intermediate?: readonly number[];
  /**
   * Mixture-of-experts layers: expert groups the stage's devices split into (consecutive, equal sizes;
   * default 1, every expert tensor-parallel over the whole stage). Attention stays tensor-parallel over all.
   */
  readonly ep?: number;
  /** The experts each expert group holds (one list per group); absent: as even as they divide. */
  readonly experts?: readonly (readonly number[])[];
}

/**
 * How a model is spread over devices: pipeline stages over layer ranges, tensor parallel inside each. The
 * first stage also holds the embedding, the last the final norm and the output projection.
 */
export interface ShardingPlan {
  readonly stages: readonly StageSpec[];
}

/**
 * The plan `--tp T --pp P [--ep E]` means: P stages of T consecutive devices, layers as even as they split,
 * and in MoE layers the experts over E groups of T / E devices each.
 */
export function gridPlan(tp: number, pp: number, numLayers: number, ep = 1): ShardingPlan {
  for (const [name, value] of [
    ['tensor-parallel size', tp],
    ['pipeline-parallel size', pp],
    ['expert-parallel size', ep],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ParallelError('INVALID_ARGUMENT', `${name} must be a positive integer, got ${value}`, {
        where: name,
      });
    }
  }
  if (pp > numLayers) {
    throw new ParallelError('SPLIT', `${numLayers} layers cannot fill ${pp} pipeline stages`, {
      where: 'pipeline-parallel size',
      fix: `use at most ${numLayers} stages`,
    });
  }
  if (tp % ep !== 0) {
    throw new ParallelError(
      'SPLIT',
      `expert-parallel size ${ep} does not divide the ${tp} devices of a stage`,
      {
        where: 'expert-parallel size',
        fix: 'each stage has --tp devices; --ep must divide it (e.g. --tp 4 --ep 2: experts over 2 groups of 2)',
      },
    );
  }
  const layers = balancedSizes(numLayers, pp);
  return {
    stages: layers.map((n, s) => ({
      devices: Array.from({ length: tp }, (_, i) => s * tp + i),
      layers: n,
      ...(ep > 1 ? { ep } : {}),
    })),
  };
}

/** A stage with its layer range, after the plan was checked against the model and the devices. */
export interface ResolvedStage extends StageSpec {
  readonly firstLayer: number;
}

/** Checks a plan against the model's layer count and the number of devices opened. */
export function resolvePlan(plan: ShardingPlan, numLayers: number, deviceCount: number): ResolvedStage[] {
  if (plan.stages.length === 0) {
    throw new ParallelError('INVALID_ARGUMENT', 'a sharding plan needs at least one stage', {
      where: 'plan.stages',
    });
  }
  let firstLayer = 0;
  const resolved = plan.stages.map((stage, s) => {
    const where = `plan.stages[${s}]`;
    if (stage.devices.length === 0) {
      throw new ParallelError('INVALID_ARGUMENT', `stage ${s} has no devices`, { where: `${where}.devices` });
    }
    stage.devices.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0 || d >= deviceCount) {
        throw new ParallelError('GROUP', `stage ${s} names device ${d}, but ${deviceCount} are open`, {
          where: `${where}.devices[${i}]`,
          fix: `open at least ${d + 1} devices, or use devices 0..${deviceCount - 1}`,
        });
      }
    });
    if (new Set(stage.devices).size !== stage.devices.length) {
      throw new ParallelError('GROUP', `stage ${s} names a device twice`, { where: `${where}.devices` });
    }
    if (!Number.isSafeInteger(stage.layers) || stage.layers < 0) {
      throw new ParallelError('INVALID_ARGUMENT', `stage ${s}: layers must be a non-negative integer`, {
        where: `${where}.layers`,
      });
    }
    for (const key of ['heads', 'intermediate'] as const) {
      const sizes = stage[key];
      if (sizes && sizes.length !== stage.devices.length) {
        throw new ParallelError(
          'SPLIT',
          `stage ${s}: ${sizes.length} ${key} sizes for ${stage.devices.length} devices`,
          {
            where: `${where}.${key}`,
          },
        );
      }
    }
    const ep = stage.ep ?? 1;
    if (!Number.isSafeInteger(ep) || ep < 1 || stage.devices.length % ep !== 0) {
      throw new ParallelError(
        'SPLIT',
        `stage ${s}: ${stage.devices.length} devices do not split into ${ep} expert groups of equal size`,
        { where: `${where}.ep`, fix: 'use an ep that divides the number of devices of the stage' },
      );
    }
    if (stage.experts && stage.experts.length !== ep) {
      throw new ParallelError('SPLIT', `stage ${s}: ${stage.experts.length} expert lists for ep ${ep}`, {
        where: `${where}.experts`,
        fix: 'give one list of experts per expert group',
      });
    }
    const out = { ...stage, firstLayer };
    firstLayer += stage.layers;
    return out;
  });
  if (firstLayer !== numLayers) {
    throw new ParallelError('SPLIT', `the stages run ${firstLayer} layers, the model has ${numLayers}`, {
      where: 'plan.stages[*].layers',
      fix: `make the stages' layers add up to ${numLayers}`,
    });
  }
  return resolved;
}

/** "2 stages: [0,1] layers 0-1 | [2] layers 2-3", for logs and reports. */
export function describePlan(stages: readonly ResolvedStage[]): string {
  return stages
    .map(
      (s) =>
        `[${s.devices.join(',')}] layers ${s.firstLayer}-${s.firstLayer + s.layers - 1}${s.ep && s.ep > 1 ? ` ep ${s.ep}` : ''}`,
    )
    .join(' | ');
}
