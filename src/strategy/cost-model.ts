import type { PipelineMeasurement } from './measure.js';
import type { PipelineElement } from './schedule.js';

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
  /** Measured wall time over the model's own prediction for the measured configuration. */
  readonly calibration: number;
  /**
   * Devices sharing one adapter's cores, measured at two microbatch counts: the wall time as a line in
   * the count, wall = total + m * perMicrobatch. There the stages' windows stretch with whatever else
   * runs on the cores, so element times do not carry over to another overlap; the whole step does: its
   * work is the same at any count, and each microbatch adds its fixed costs (dispatches, host round
   * trips). Moving layers between such devices changes neither.
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
  const probe = options.probe;
  const costs = elements.map((element, i): ElementCost => {
    const m = measured.elements[i]!;
    const other = probe?.measured.elements[i];
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
  if (line) return Math.max(0, line.totalMs + line.perMicrobatchMs * candidate.microbatches);
  return model.calibration * rawPrediction(model, candidate);
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
 * Fill-drain over the predicted element times (the busiest lane paces the steady state); where the
 * devices share one adapter's cores, also no faster than their total kernel time over the measured
 * concurrency.
 */
function rawPrediction(model: CostModel, candidate: CostCandidate): number {
  const m = candidate.microbatches;
  const tokens = (model.tokensPerMicrobatch * model.microbatches) / m;
  const times = predictElementMs(model, candidate);
  const lanes = new Map<string, number>();
  model.elements.forEach((e, i) => {
    for (const lane of e.lanes) lanes.set(lane, (lanes.get(lane) ?? 0) + times[i]!);
  });
  const fill = times.reduce((a, b) => a + b, 0);
  const fillDrain = fill + (m - 1) * Math.max(...lanes.values());
  if (!model.sharedCores) return fillDrain;
  let stage = 0;
  let busy = 0;
  for (const e of model.elements) {
    if (e.kind !== 'compute') continue;
    const layers = candidate.layers?.[stage++] ?? e.layers;
    busy += e.lanes.length * scaleLayers(e, e.busyFixedMs + e.busyPerTokenMs * tokens, layers);
  }
  return Math.max(fillDrain, (m * busy) / model.concurrency);
}
