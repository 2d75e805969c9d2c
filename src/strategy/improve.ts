import { placeExperts } from '../parallel/expert-placement.js';
import { balancedSizes } from '../parallel/head-split.js';
import { checkStrategy } from './check-strategy.js';
import {
  buildCostModel,
  type CostCandidate,
  type CostModel,
  predictElementMs,
  predictWallMs,
} from './cost-model.js';
import { hasErrors } from './findings.js';
import { batchShape } from './model-estimate.js';
import { relativeSpread } from './report-sections.js';
import type { StrategyRun } from './run-strategy.js';
import { decoderFlops, type ModelStagePlan } from './stages/decoder.js';

/** One change `improve` made to the file, with the measured figures behind it. */
export interface Move {
  readonly kind: 'layers' | 'microbatches' | 'experts' | 'split';
  /** The JSON path it changed. */
  readonly path: string;
  readonly from: unknown;
  readonly to: unknown;
  readonly reason: string;
}

export interface Improvement {
  /** The improved strategy file, validated; null when no move is worth making. */
  readonly improved: Record<string, unknown> | null;
  readonly moves: readonly Move[];
  /** Moves looked at and not made, and why (noise, shared cores, nothing to gain, validation). */
  readonly declined: readonly string[];
  /** The cost model's prediction for the improved file, and for the measured one. */
  readonly predictedMs: number | null;
  readonly predictedBeforeMs: number;
}

export interface ImproveResult extends Improvement {
  readonly before: StrategyRun;
  /** The improved file's run, in the same process, right after the first; null when nothing changed. */
  readonly after: StrategyRun | null;
  /** Median wall time before over after. */
  readonly speedup: number | null;
  /** The short unchecked run at another microbatch count the cost model was fitted with, if any. */
  readonly probe: StrategyRun | null;
}

/**
 * The microbatch count of the probe run that splits each element's cost into fixed and per-token parts:
 * the smallest divisor of the batch from a quarter of the file's count (a line through two points far
 * apart is steadier on a noisy machine), or the next one above when the file has one microbatch.
 */
export function probeMicrobatches(batchSize: number, m: number): number | null {
  const ds = divisors(batchSize).filter((d) => d !== m);
  if (m === 1) return ds[0] ?? null;
  return ds.find((d) => d >= m / 4) ?? null;
}

/** A predicted gain must clear the wall time's spread across the repeated runs, and at least this. */
const MIN_GAIN = 0.05;

/**
 * The runs' relative spread without the one farthest from their median, where there are three or more: a
 * single stalled run otherwise vetoes every move. On the 2-core VM, llama-tiny's unbalanced test file: walls
 * of 122.3, 125.9 and 181.3 ms made the spread 47% and declined a move predicted at 46% that measured 1.6-2.1x
 * in the runs around it.
 */
export function wallNoise(walls: readonly number[]): number {
  if (walls.length < 3) return relativeSpread(walls);
  const sorted = [...walls].sort((a, b) => a - b);
  const mid = sorted[(sorted.length - 1) >> 1]!;
  const last = sorted.length - 1;
  const kept = mid - sorted[0]! > sorted[last]! - mid ? sorted.slice(1) : sorted.slice(0, last);
  return relativeSpread(kept);
}

// biome-ignore lint/suspicious/noExplicitAny: the strategy file is edited as the JSON it is
type Json = any;

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/** Every split of `total` layers into `parts` contiguous ranges of at least one, up to `limit` of them. */
function partitions(total: number, parts: number, limit = 20000): number[][] {
  const out: number[][] = [];
  const walk = (left: number, slots: number, acc: number[]) => {
    if (out.length >= limit) return;
    if (slots === 1) {
      out.push([...acc, left]);
      return;
    }
    for (let n = 1; n <= left - (slots - 1); n++) walk(left - n, slots - 1, [...acc, n]);
  };
  walk(total, parts, []);
  return out;
}

/** `total` split in proportion to `weights` (at least `min` each), largest remainders first. */
export function proportionalSizes(total: number, weights: readonly number[], min = 1): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const spare = total - min * weights.length;
  if (spare < 0 || sum <= 0) return balancedSizes(total, weights.length);
  const raw = weights.map((w) => (w / sum) * spare);
  const sizes = raw.map((r) => min + Math.floor(r));
  let left = total - sizes.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => [r - Math.floor(r), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (left-- <= 0) break;
    sizes[i]!++;
  }
  return sizes;
}

/**
 * The cost model of a measured run (and its probe at another microbatch count, when there is one), with
 * each model stage's decoder layers and their share of its estimated flops: what `improve` ranks
 * candidates with, and what the variants bench checks against measured runs.
 */
export function fitCostModel(
  run: StrategyRun,
  file: unknown,
  options: { baseDir?: string; probe?: StrategyRun } = {},
): { model: CostModel; modelPlans: readonly ModelStagePlan[] } {
  const checked = checkStrategy(file, { baseDir: options.baseDir });
  const strategy = run.strategy;
  const m = strategy.batch.microbatches;
  const shared = run.sharing.oneAdapter && run.sharing.software;
  const layerInfo = new Map<number, { layers: number; share: number }>();
  const modelPlans = checked.family === 'model' ? checked.plans : [];
  if (checked.family === 'model' && checked.source) {
    const batch = batchShape(checked.strategy!);
    const config = checked.source.config;
    run.schedule.elements.forEach((e, i) => {
      if (e.kind !== 'compute') return;
      const plan = e.stage as ModelStagePlan;
      const all = decoderFlops(plan, config, 0, batch);
      const rest = decoderFlops({ ...plan, layerCount: 0 }, config, 0, batch);
      layerInfo.set(i, { layers: plan.layerCount, share: all > 0 ? 1 - rest / all : 1 });
    });
  }
  const tokens = (strategy.batch.batch_size / m) * run.seqLen;
  const model = buildCostModel(run.pipelined, run.schedule.elements, {
    tokensPerMicrobatch: tokens,
    microbatches: m,
    sharedCores: shared,
    layers: layerInfo,
    ...(options.probe
      ? {
          probe: {
            measured: options.probe.pipelined,
            tokensPerMicrobatch:
              (strategy.batch.batch_size / options.probe.strategy.batch.microbatches) * run.seqLen,
          },
        }
      : {}),
  });
  return { model, modelPlans };
}

/**
 * A better strategy derived from a measured run: layers moved between stages by their measured time, the
 * microbatch count the measured per-microbatch and per-token costs favour, experts moved by their measured
 * load, tensor-parallel split sizes by the devices' measured speed (only where the devices do not share
 * one adapter's cores: there a busier device is waiting for cores, not slower). Every candidate is ranked
 * by the cost model built from the run, kept only when its predicted gain clears the spread across the
 * repeated runs, and the result is validated; a move that breaks validation is dropped.
 */
export function deriveImprovement(
  run: StrategyRun,
  file: unknown,
  options: { baseDir?: string; probe?: StrategyRun } = {},
): Improvement {
  const declined: string[] = [];
  const { model, modelPlans } = fitCostModel(run, file, options);
  const strategy = run.strategy;
  const m = strategy.batch.microbatches;
  const shared = model.sharedCores;
  const walls = run.repeatsMeasured.map((r) => r.wallMs);
  const noise = Math.max(MIN_GAIN, wallNoise(walls));
  const current: CostCandidate = {
    microbatches: m,
    ...(modelPlans.length > 0 ? { layers: modelPlans.map((p) => p.layerCount) } : {}),
  };
  const predictedBeforeMs = predictWallMs(model, current);
  const ranked = rankCandidates(model, current, strategy.batch.batch_size, modelPlans.length > 1, noise);
  const moves: Move[] = [];
  let chosen: { candidate: CostCandidate; ms: number } | null = null;
  for (const c of ranked.slice(0, 64)) {
    if (predictedBeforeMs / c.ms - 1 <= noise) break;
    const tried = candidateMoves(run, model, file as Json, current, c, modelPlans);
    if (tried.length === 0) continue;
    const result = checkStrategy(applyMoves(file, tried), { baseDir: options.baseDir });
    if (hasErrors(result.findings)) {
      const first = result.findings.find((f) => f.severity === 'error')!;
      declined.push(
        `Not proposed: ${describeCandidate(c.candidate)} (predicted ${c.ms.toFixed(1)} ms), which fails validation (${first.code} at ${first.path}).`,
      );
      continue;
    }
    moves.push(...tried);
    chosen = c;
    break;
  }
  const best = chosen ?? ranked[0]!;
  if (modelPlans.length > 1 && best.candidate.layers?.every((n, s) => n === current.layers![s])) {
    const at = best.candidate.microbatches;
    declined.push(
      `Layers: no other split of the ${current.layers!.reduce((a, b) => a + b, 0)} layers is predicted faster at ${at} microbatch${at > 1 ? 'es' : ''}` +
        (shared
          ? `: the devices share the host's cores (measured capacity ${model.capacity?.toFixed(2)} stages at once), so a stage left with more layers runs faster while the other idles.`
          : '.'),
    );
  }
  if (!chosen) {
    declined.push(
      `No microbatch count or layer split that validates is predicted to gain more than ${(noise * 100).toFixed(0)}% ` +
        `(the wall time's spread over ${walls.length} runs${walls.length >= 3 ? ' less the one farthest from their median' : ''}, or ${MIN_GAIN * 100}%): the best predicted ${ranked[0]!.ms.toFixed(1)} ms against ${predictedBeforeMs.toFixed(1)} ms.`,
    );
  }
  const json: Json = applyMoves(file, moves);
  moves.push(...expertMoves(run, json, modelPlans, declined));
  if (shared) {
    declined.push(
      "Split sizes: the devices share one adapter on the host's cores, so a device that was busier was waiting for cores as much as computing; uneven splits are left as they are.",
    );
  } else moves.push(...splitMoves(run, json, modelPlans, noise, declined));
  if (moves.length === 0) return { improved: null, moves, declined, predictedMs: null, predictedBeforeMs };
  const valid = validated(file, moves, options.baseDir, declined);
  if (!valid) return { improved: null, moves: [], declined, predictedMs: null, predictedBeforeMs };
  return {
    improved: valid.json,
    moves: valid.moves,
    declined,
    predictedMs: predictWallMs(model, {
      microbatches: valid.json.batch.microbatches,
      ...(modelPlans.length > 0
        ? { layers: valid.json.stages.map((s: Json) => s.layers[1] - s.layers[0] + 1) }
        : {}),
    }),
    predictedBeforeMs,
  };
}

/** The candidate of least predicted time over every microbatch count dividing the batch (and layer split). */
function describeCandidate(c: CostCandidate): string {
  return `${c.microbatches} microbatches${c.layers ? `, layers [${c.layers.join(', ')}] per stage` : ''}`;
}

/**
 * Every candidate (microbatch counts dividing the batch, layer splits), fastest predicted first; of
 * those the noise cannot tell from the fastest, the one nearest the file comes first, so that the pick
 * does not flip from run to run of the same file on figures within each other's spread.
 */
function rankCandidates(
  model: CostModel,
  current: CostCandidate,
  batchSize: number,
  moveLayers: boolean,
  noise: number,
): { candidate: CostCandidate; ms: number }[] {
  const splits =
    moveLayers && current.layers
      ? partitions(
          current.layers.reduce((a, b) => a + b, 0),
          current.layers.length,
        )
      : [current.layers];
  const all: { candidate: CostCandidate; ms: number }[] = [];
  for (const microbatches of divisors(batchSize)) {
    for (const layers of splits) {
      const candidate = { microbatches, ...(layers ? { layers } : {}) };
      all.push({ candidate, ms: predictWallMs(model, candidate) });
    }
  }
  const fastest = Math.min(...all.map((c) => c.ms));
  const distance = (c: CostCandidate) =>
    Math.abs(Math.log2(c.microbatches / current.microbatches)) +
    (c.layers?.reduce((n, l, s) => n + Math.abs(l - current.layers![s]!), 0) ?? 0);
  const near = (c: { ms: number }) => c.ms <= fastest * (1 + noise / 2);
  return all.sort(
    (a, b) =>
      Number(near(b)) - Number(near(a)) ||
      (near(a) ? distance(a.candidate) - distance(b.candidate) : 0) ||
      a.ms - b.ms,
  );
}

/** The moves that turn the file's microbatch count and layer split into the candidate's. */
function candidateMoves(
  run: StrategyRun,
  model: CostModel,
  file: Json,
  current: CostCandidate,
  best: { candidate: CostCandidate },
  modelPlans: readonly ModelStagePlan[],
): Move[] {
  const moves: Move[] = [];
  const m = current.microbatches;
  if (best.candidate.microbatches !== m) {
    moves.push({
      kind: 'microbatches',
      path: '$.batch.microbatches',
      from: m,
      to: best.candidate.microbatches,
      reason: microbatchReason(model, run, best.candidate.microbatches),
    });
  }
  const layers = best.candidate.layers;
  if (!layers || !current.layers || layers.every((n, s) => n === current.layers![s])) return moves;
  const computeNames = new Set(modelPlans.map((p) => p.spec.name));
  const measuredMs = run.pipelined.elements.filter((e) => computeNames.has(e.name)).map((e) => e.medianMs);
  const predicted = predictElementMs(model, best.candidate).filter(
    (_, i) => model.elements[i]!.kind === 'compute',
  );
  let first = 0;
  layers.forEach((n, s) => {
    if (n !== current.layers![s]) {
      const had = current.layers![s]!;
      moves.push({
        kind: 'layers',
        path: `$.stages[${s}].layers`,
        from: file.stages[s].layers,
        to: [first, first + n - 1],
        reason:
          `stage ${file.stages[s].name} took ${measuredMs[s]?.toFixed(1)} ms a microbatch for ${had} layer${had === 1 ? '' : 's'}; ` +
          `with ${n} the stages are predicted at ${predicted.map((t) => t.toFixed(1)).join(' / ')} ms a microbatch (at ${best.candidate.microbatches} microbatches)`,
      });
    }
    first += n;
  });
  return moves;
}

function microbatchReason(model: CostModel, run: StrategyRun, to: number): string {
  const m = run.strategy.batch.microbatches;
  const line = model.wallLine;
  if (line) {
    return (
      `measured at ${m} microbatches and at the probe's count, the step took ${line.totalMs.toFixed(1)} ms of work plus ` +
      `${line.perMicrobatchMs.toFixed(1)} ms a microbatch (its dispatches and host round trips, paid however small it is; ` +
      `the devices share the host's cores, so overlapping stages shortens the work little): ${to} microbatches are predicted at ` +
      `${predictWallMs(model, { microbatches: to, layers: model.elements.filter((e) => e.kind === 'compute').map((e) => e.layers) }).toFixed(1)} ms`
    );
  }
  const fixed = model.elements.filter((e) => e.kind === 'compute').reduce((n, e) => n + e.fixedMs, 0);
  return (
    `each microbatch paid ${fixed.toFixed(1)} ms that does not shrink with its size (the stages' host gaps, ` +
    `such as tensor-parallel all-reduces, and their kernels' dispatch floors, measured); ` +
    `${to} microbatches ${to < m ? 'pay it fewer times' : 'shorten the fill and drain'} for a predicted net gain`
  );
}

/** MoE stages: the experts the measured routing says to move, applied to the stage's expert lists. */
function expertMoves(
  run: StrategyRun,
  json: Json,
  plans: readonly ModelStagePlan[],
  declined: string[],
): Move[] {
  const load = run.expertLoad;
  if (!load) return [];
  const moves: Move[] = [];
  for (const st of load.stages) {
    const plan = plans[st.stage];
    if (!plan?.experts) continue;
    const busiest = st.busiestGroup.rows;
    if (st.moves.length === 0 || st.maxGroupRowsAfter > busiest * (1 - MIN_GAIN)) {
      declined.push(
        `Experts of stage ${json.stages[st.stage].name}: the busiest expert group ran ${busiest} rows; no move lowers it by ${MIN_GAIN * 100}% (routing counts repeat exactly from run to run: same inputs).`,
      );
      continue;
    }
    const lists = plan.experts.map((l) => [...l]);
    for (const mv of st.moves) {
      lists[mv.fromGroup] = lists[mv.fromGroup]!.filter((e) => e !== mv.expert);
      lists[mv.toGroup]!.push(mv.expert);
    }
    placeExperts(lists.flat().length, lists.length, lists);
    moves.push({
      kind: 'experts',
      path: `$.stages[${st.stage}].experts`,
      from: plan.experts,
      to: lists,
      reason: `measured rows per expert group [${st.perGroup.join(', ')}]; moving ${st.moves.map((mv) => `expert ${mv.expert} to group ${mv.toGroup}`).join(', ')} brings the busiest to ${st.maxGroupRowsAfter}`,
    });
    json.stages[st.stage].experts = lists;
  }
  return moves;
}

/** Devices of their own: split sizes in proportion to each device's measured speed on its share. */
function splitMoves(
  run: StrategyRun,
  json: Json,
  plans: readonly ModelStagePlan[],
  noise: number,
  declined: string[],
): Move[] {
  const moves: Move[] = [];
  const busyOf = (d: number) => run.pipelined.devices.find((x) => x.device === d)?.busyMs ?? 0;
  json.stages.forEach((stage: Json, s: number) => {
    const devices: number[] = plans[s] ? plans[s]!.devices.slice() : (stage.tensor_parallel?.devices ?? []);
    if (devices.length < 2) return;
    const busy = devices.map(busyOf);
    const spread = relativeSpread(busy);
    if (spread <= noise) {
      declined.push(
        `Split of ${stage.name}: its devices' busy times differ by ${(spread * 100).toFixed(0)}%, within the noise.`,
      );
      return;
    }
    const current: number[] | undefined = plans[s]
      ? (plans[s]!.heads?.map((h) => h.qCount) ?? undefined)
      : stage.tensor_parallel?.sizes;
    const total = current?.reduce((a, b) => a + b, 0);
    if (!current || !total) return;
    // Speed of each device on its share: its share over its busy time.
    const speed = current.map((n, r) => n / Math.max(busy[r]!, 1e-9));
    const sizes = proportionalSizes(total, speed);
    if (sizes.every((x, r) => x === current[r])) return;
    const path = plans[s] ? `$.stages[${s}].heads` : `$.stages[${s}].tensor_parallel.sizes`;
    moves.push({
      kind: 'split',
      path,
      from: current,
      to: sizes,
      reason: `devices [${devices.join(', ')}] were busy ${busy.map((b) => b.toFixed(1)).join(' / ')} ms for their shares`,
    });
    if (plans[s]) stage.heads = sizes;
    else stage.tensor_parallel.sizes = sizes;
  });
  return moves;
}

/** Sets the value at a JSON path of the form `$.a.b[2].c`. */
function setAtPath(json: Json, path: string, value: unknown): void {
  const keys = [...path.slice(1).matchAll(/\.([A-Za-z_$][\w$]*)|\[(\d+)\]/g)].map((k) =>
    k[1] !== undefined ? k[1] : Number(k[2]),
  );
  let at = json;
  for (const key of keys.slice(0, -1)) at = at[key];
  at[keys[keys.length - 1]!] = value;
}

/** The file with `moves` applied: a fresh copy, so a dropped move leaves no trace. */
function applyMoves(file: Json, moves: readonly Move[]): Json {
  const json = structuredClone(file);
  for (const mv of moves) setAtPath(json, mv.path, structuredClone(mv.to));
  json.name = `${file.name ?? 'strategy'} (improved)`;
  return json;
}

/** The improved file if it validates; else the moves are dropped one by one, last first, until it does. */
function validated(
  file: Json,
  moves: Move[],
  baseDir: string | undefined,
  declined: string[],
): { json: Json; moves: Move[] } | null {
  for (let n = moves.length; n > 0; n--) {
    const kept = moves.slice(0, n);
    const json = applyMoves(file, kept);
    const result = checkStrategy(json, { baseDir });
    if (!hasErrors(result.findings)) return { json, moves: kept };
    const first = result.findings.find((f) => f.severity === 'error')!;
    declined.push(
      `Not proposed: ${moves[n - 1]!.kind} at ${moves[n - 1]!.path}, which with the moves before it fails validation (${first.code} at ${first.path}).`,
    );
  }
  return null;
}
