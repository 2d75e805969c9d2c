import { median } from '../stats.js';
import type { ElementMeasurement, PipelineMeasurement } from './measure.js';
import type { PipelineElement } from './schedule.js';
import { aloneMs, measureCapacity, sharedFillDrainMs } from './shared-cores.js';

/**
 * A pipeline's measured costs, split so that they carry over to another microbatch count or another
 * layer split: per stage a part paid once a microbatch (the host's gaps in the stage's window, such as
 * tensor-parallel all-reduces, and every kernel's dispatch floor) and a part per token (its kernels'
 * time above the floors); per transfer the same. A model stage's costs split further into its decoder
 * layers (per layer) and the rest (the embedding, the head), by their estimated flops.
 */
export interface ElementCost {
  readonly name: string;
  readonly kind: 'compute' | 'comm';
  /** The lanes it occupies: its devices, or the host for a transfer. */
  readonly lanes: readonly string[];
  readonly fixedMs: number;
  readonly perTokenMs: number;
  /** Of a compute element's time: the part that is kernels (the rest is the host's gaps). */
  readonly busyFixedMs: number;
  readonly busyPerTokenMs: number;
  /** Decoder layers it runs, and the share of its cost they take (1 for a chain stage). */
  readonly layers: number;
  readonly layerShare: number;
}

export interface CostModel {
  readonly elements: readonly ElementCost[];
  readonly tokensPerMicrobatch: number;
  readonly microbatches: number;
  /** Devices computing at once while any did; devices on one CPU adapter stay near 1. */
  readonly concurrency: number;
  /** Whether the devices share one adapter's execution units (then total work bounds the time too). */
  readonly sharedCores: boolean;
  /**
   * Where they do: how many stages' worth of speed the cores give at once (shared-cores.ts), measured
   * from the run's stage times alone and beside each other; the element costs are then times alone.
   */
  readonly capacity?: number;
  /** Measured wall time over the model's own prediction for the measured configuration. */
  readonly calibration: number;
  /**
   * Devices sharing one adapter's cores, measured at two microbatch counts: the wall time as a line in
   * the count, wall = total + m * perMicrobatch. There the stages' windows stretch with whatever else
   * runs on the cores, so element times do not carry over to another overlap; the whole step does: its
   * work is the same at any count, and each microbatch adds its fixed costs (dispatches, host round
   * trips). Another split of the layers at the same count adds what `capacity` says it costs.
   */
  readonly wallLine?: { readonly totalMs: number; readonly perMicrobatchMs: number };
}

/** What a candidate changes: the microbatch count, and (model strategies) the layers of each stage. */
export interface CostCandidate {
  readonly microbatches: number;
  readonly layers?: readonly number[];
}

/** A transfer's time that does not shrink with its bytes: the host's map and submit round trip. */
const TRANSFER_FIXED_MS = 0.3;

export function buildCostModel(
  measured: PipelineMeasurement,
  elements: readonly PipelineElement[],
  options: {
    readonly tokensPerMicrobatch: number;
    readonly microbatches: number;
    readonly sharedCores: boolean;
    /** Per compute element: its decoder layers and their share of its estimated flops. */
    readonly layers?: ReadonlyMap<number, { layers: number; share: number }>;
    /**
     * The same pipeline measured at another microbatch size: with two sizes, each element's time splits
     * into its fixed and per-token parts by a line through both; with one, by its kernels' dispatch floors.
     */
    readonly probe?: { readonly measured: PipelineMeasurement; readonly tokensPerMicrobatch: number };
  },
): CostModel {
  const tokens = options.tokensPerMicrobatch;
  const capacity = options.sharedCores
    ? (measureCapacity(computeTimes(measured, elements)) ??
      (options.probe ? measureCapacity(computeTimes(options.probe.measured, elements)) : null) ??
      1)
    : undefined;
  const base = capacity === undefined ? measured.elements : alone(measured, elements, capacity);
  const probe = options.probe && {
    ...options.probe,
    elements:
      capacity === undefined
        ? options.probe.measured.elements
        : alone(options.probe.measured, elements, capacity),
  };
  const costs = elements.map((element, i): ElementCost => {
    const m = base[i]!;
    const other = probe?.elements[i];
    if (probe && other && probe.tokensPerMicrobatch !== tokens) {
      const line = (t1: number, t2: number) => {
        const perToken = Math.max(0, (t2 - t1) / (probe.tokensPerMicrobatch - tokens));
        return { fixed: Math.max(0, t1 - perToken * tokens), perToken };
      };
      const time = line(m.medianMs, other.medianMs);
      const busy = line(m.medianBusyMs ?? m.medianMs, other.medianBusyMs ?? other.medianMs);
      const layerInfo = options.layers?.get(i);
      return {
        name: element.name,
        kind: element.kind,
        lanes: element.kind === 'comm' ? ['host'] : element.stage.devices.map(String),
        fixedMs: time.fixed,
        perTokenMs: time.perToken,
        busyFixedMs: element.kind === 'comm' ? 0 : busy.fixed,
        busyPerTokenMs: element.kind === 'comm' ? 0 : busy.perToken,
        layers: layerInfo?.layers ?? 0,
        layerShare: layerInfo?.share ?? (element.kind === 'comm' ? 0 : 1),
      };
    }
    if (element.kind === 'comm') {
      const fixed = Math.min(m.medianMs, TRANSFER_FIXED_MS);
      return {
        name: element.name,
        kind: 'comm',
        lanes: ['host'],
        fixedMs: fixed,
        perTokenMs: (m.medianMs - fixed) / tokens,
        busyFixedMs: 0,
        busyPerTokenMs: 0,
        layers: 0,
        layerShare: 0,
      };
    }
    const busy = m.medianBusyMs ?? m.medianMs;
    const floor = Math.min(busy, (m.kernelsPerMicrobatch ?? 0) * measured.smallKernelMs);
    const gaps = Math.max(0, m.medianMs - busy);
    const layerInfo = options.layers?.get(i);
    return {
      name: element.name,
      kind: 'compute',
      lanes: element.stage.devices.map(String),
      fixedMs: gaps + floor,
      perTokenMs: (busy - floor) / tokens,
      busyFixedMs: floor,
      busyPerTokenMs: (busy - floor) / tokens,
      layers: layerInfo?.layers ?? 0,
      layerShare: layerInfo?.share ?? 1,
    };
  });
  const model: CostModel = {
    elements: costs,
    tokensPerMicrobatch: tokens,
    microbatches: options.microbatches,
    concurrency: Math.max(1, measured.concurrency),
    sharedCores: options.sharedCores,
    ...(capacity === undefined ? {} : { capacity }),
    calibration: 1,
  };
  const own = rawPrediction(model, { microbatches: options.microbatches });
  const calibration = own > 0 ? measured.wallMs / own : 1;
  if (options.sharedCores && probe) {
    const m2 = (options.microbatches * tokens) / probe.tokensPerMicrobatch;
    const perMicrobatchMs = (measured.wallMs - probe.measured.wallMs) / (options.microbatches - m2);
    const totalMs = measured.wallMs - perMicrobatchMs * options.microbatches;
    return { ...model, calibration, wallLine: { totalMs, perMicrobatchMs } };
  }
  return { ...model, calibration };
}

/** A candidate's predicted wall time, in the measured run's scale. */
export function predictWallMs(model: CostModel, candidate: CostCandidate): number {
  const line = model.wallLine;
  if (!line) return model.calibration * rawPrediction(model, candidate);
  // The count from the measured walls (steadier than any element's time on shared cores); another split
  // of the layers adds what sharing the cores predicts it costs over the file's own split at that count.
  const own = { microbatches: candidate.microbatches };
  const split = rawPrediction(model, candidate) - rawPrediction(model, own);
  return Math.max(
    0,
    line.totalMs + line.perMicrobatchMs * candidate.microbatches + model.calibration * split,
  );
}

/** The compute elements' per-microbatch times, in pipeline order. */
function computeTimes(measured: PipelineMeasurement, elements: readonly PipelineElement[]): number[][] {
  return elements.flatMap((e, i) =>
    e.kind === 'compute' ? [[...measured.elements[i]!.perMicrobatchMs]] : [],
  );
}

/** A run's element times as each compute stage would take them alone (its busy time in proportion). */
function alone(
  measured: PipelineMeasurement,
  elements: readonly PipelineElement[],
  capacity: number,
): ElementMeasurement[] {
  const stages = elements.filter((e) => e.kind === 'compute').length;
  let stage = 0;
  return elements.map((e, i) => {
    const m = measured.elements[i]!;
    if (e.kind !== 'compute' || m.perMicrobatchMs.length === 0) return m;
    const times = aloneMs(m.perMicrobatchMs, stage++, stages, capacity);
    const medianMs = median(times);
    const scale = m.medianMs > 0 ? medianMs / m.medianMs : 1;
    return {
      ...m,
      medianMs,
      perMicrobatchMs: times,
      ...(m.medianBusyMs === undefined ? {} : { medianBusyMs: m.medianBusyMs * scale }),
    };
  });
}

/** Each element's predicted time per microbatch for a candidate. */
export function predictElementMs(model: CostModel, candidate: CostCandidate): number[] {
  const tokens = (model.tokensPerMicrobatch * model.microbatches) / candidate.microbatches;
  let stage = 0;
  return model.elements.map((e) => {
    const base = e.fixedMs + e.perTokenMs * tokens;
    if (e.kind === 'comm') return base;
    const layers = candidate.layers?.[stage++] ?? e.layers;
    return scaleLayers(e, base, layers);
  });
}

function scaleLayers(e: ElementCost, ms: number, layers: number): number {
  if (e.layers === 0) return ms;
  return ms * (1 - e.layerShare) + ((ms * e.layerShare) / e.layers) * layers;
}

/**
 * Fill-drain over the predicted element times: the busiest lane paces the steady state; where the
 * devices share one adapter's cores, each step's stages share them (shared-cores.ts).
 */
function rawPrediction(model: CostModel, candidate: CostCandidate): number {
  const m = candidate.microbatches;
  const times = predictElementMs(model, candidate);
  const lanes = new Map<string, number>();
  model.elements.forEach((e, i) => {
    for (const lane of e.lanes) lanes.set(lane, (lanes.get(lane) ?? 0) + times[i]!);
  });
  const fill = times.reduce((a, b) => a + b, 0);
  if (model.capacity === undefined) return fill + (m - 1) * Math.max(...lanes.values());
  // The host moves a transfer's bytes while the stages compute: it lies on the path once, in the fill.
  const works = times.filter((_, i) => model.elements[i]!.kind === 'compute');
  const transfers = times.filter((_, i) => model.elements[i]!.kind === 'comm').reduce((a, b) => a + b, 0);
  return sharedFillDrainMs(works, m, model.capacity) + transfers;
}
