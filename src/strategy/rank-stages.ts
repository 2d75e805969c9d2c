import { splitOffsets } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { StagePlan } from './model-plan.js';
import type { BuildContext, StageRuntime, StageWeights } from './stages/kind.js';
import { chainKind } from './stages/registry.js';

/**
 * A split stage's part on one rank: the same stage over the rank's devices of its group, with those
 * devices' shard sizes and the slice of the weights they hold (a column split's columns, a row split's
 * rows), so the library's own module computes exactly those devices' shards. The split dim's width becomes
 * the sum of the local shards; everything else stays.
 */
export function localStage(
  plan: StagePlan,
  weights: StageWeights,
  local: readonly number[],
): { plan: StagePlan; weights: StageWeights } {
  if (local.length === plan.devices.length) return { plan, weights };
  const at = local.map((d) => plan.devices.indexOf(d));
  const sizes = at.map((i) => plan.shardSizes[i]!);
  const offsets = splitOffsets(plan.shardSizes);
  const ranges = at.map((i) => [offsets[i]!, offsets[i]! + plan.shardSizes[i]!] as const);
  const width = sizes.reduce((a, b) => a + b, 0);
  const tp = plan.spec.tensor_parallel!;
  const spec = { ...plan.spec, tensor_parallel: { ...tp, devices: [...local], sizes } };
  const base = { ...plan, spec, devices: [...local], shardSizes: sizes };
  if (plan.mode === 'column') {
    // W [in, out]: the columns of the local shards; the bias likewise.
    return {
      plan: { ...base, outFeatures: width, output: { ...plan.output, devices: [...local] } },
      weights: {
        ...weights,
        w: columns(weights.w, plan.inFeatures, plan.outFeatures, ranges),
        ...(weights.b ? { b: columns(weights.b, 1, plan.outFeatures, ranges) } : {}),
      },
    };
  }
  // Row: W [in, out]'s rows of the local shards; the bias is added once after the sum, whole.
  return {
    plan: { ...base, inFeatures: width, output: { ...plan.output, devices: [...local] } },
    weights: { ...weights, w: rows(weights.w, plan.outFeatures, ranges) },
  };
}

function columns(
  w: Float32Array,
  rowCount: number,
  width: number,
  ranges: readonly (readonly [number, number])[],
): Float32Array {
  const out = new Float32Array(rowCount * ranges.reduce((n, [a, b]) => n + b - a, 0));
  let at = 0;
  for (let r = 0; r < rowCount; r++) {
    for (const [a, b] of ranges) {
      out.set(w.subarray(r * width + a, r * width + b), at);
      at += b - a;
    }
  }
  return out;
}

function rows(w: Float32Array, width: number, ranges: readonly (readonly [number, number])[]): Float32Array {
  const out = new Float32Array(width * ranges.reduce((n, [a, b]) => n + b - a, 0));
  let at = 0;
  for (const [a, b] of ranges) {
    out.set(w.subarray(a * width, b * width), at);
    at += (b - a) * width;
  }
  return out;
}

/**
 * A row split's part on a rank that holds none of its rows but receives its sum: the same stage with no
 * rows on the rank's devices of the consumer, so that its `finishTransfer` adds the bias there, once,
 * after the sum, as on the ranks that do hold rows. It never runs a forward (it has no lane).
 */
export function biasOnlyStage(
  plan: StagePlan,
  weights: StageWeights,
  devices: readonly number[],
): { plan: StagePlan; weights: StageWeights } {
  const sizes = devices.map(() => 0);
  const tp = plan.spec.tensor_parallel!;
  return {
    plan: {
      ...plan,
      spec: { ...plan.spec, tensor_parallel: { ...tp, devices: [...devices], sizes } },
      devices: [...devices],
      shardSizes: sizes,
      inFeatures: 0,
      output: { ...plan.output, devices: [...devices] },
    },
    weights: { ...weights, w: new Float32Array(0) },
  };
}

/**
 * Builds every stage this rank holds a device of, by its kind, over those devices (by element index); and
 * where a row split's sum lands on this rank's devices without any of its rows, the stage's bias holder.
 */
export function buildLocalStages(
  computes: readonly { readonly index: number; readonly plan: StagePlan }[],
  weights: readonly StageWeights[],
  group: DeviceGroup,
  env: BuildContext,
): Map<number, StageRuntime> {
  const mine = new Set(group.devices.map((d) => d.id));
  const runtimes = new Map<number, StageRuntime>();
  try {
    for (const [k, { index, plan }] of computes.entries()) {
      const local = plan.devices.filter((d) => mine.has(d));
      const consumer = computes[k + 1];
      // The communication between them (index + 1) delivers the sum to the consumer's devices.
      const sumHere =
        plan.mode === 'row' && consumer?.index === index + 2
          ? consumer.plan.devices.filter((d) => mine.has(d))
          : [];
      if (local.length === 0 && sumHere.length === 0) continue;
      const part =
        local.length > 0
          ? localStage(plan, weights[plan.index]!, local)
          : biasOnlyStage(plan, weights[plan.index]!, sumHere);
      runtimes.set(
        index,
        chainKind(plan.kind).build(part.plan, group.select(part.plan.devices), part.weights, env),
      );
    }
  } catch (error) {
    for (const r of runtimes.values()) r.destroy();
    throw error;
  }
  return runtimes;
}
