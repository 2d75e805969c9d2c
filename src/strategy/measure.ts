import type { KernelSpan } from '../runtime/device.js';
import { median } from '../stats.js';
import type { CommSpan, ExecutionResult } from './executor.js';
import { lanesOf, type PipelineElement } from './schedule.js';

/** What the measurement reads of a device: a `Device`, or one on another rank as that rank reported it. */
export interface MeasuredDevice {
  readonly id: number;
  readonly name: string;
  readonly adapter: { readonly name: string };
  readonly ledger: { readonly peakBytes: number };
  /** Across ranks: the rank that owns it. */
  readonly rank?: number;
}

export interface DeviceMeasurement {
  readonly device: number;
  readonly name: string;
  /** Across ranks: the rank that owns it. */
  readonly rank?: number;
  readonly busyMs: number;
  readonly utilization: number;
  readonly idleFraction: number;
  readonly kernels: number;
  readonly peakBytes: number;
  readonly stages: readonly string[];
}

export interface ElementMeasurement {
  readonly name: string;
  readonly kind: 'compute' | 'comm';
  /**
   * Median over microbatches of the element's time: first kernel start to last kernel end on its devices,
   * or, for a transfer, from when its source devices were ready to when the host had moved its bytes.
   */
  readonly medianMs: number;
  readonly perMicrobatchMs: readonly number[];
  /**
   * A stage's kernels on its slowest device: the median time some kernel of it was running (its window
   * less the gaps, where the device waited for the host: all-reduces, issue), and how many it ran.
   */
  readonly medianBusyMs?: number;
  readonly kernelsPerMicrobatch?: number;
  /** A transfer's median wait, from the host starting it to its source devices being ready. */
  readonly medianWaitMs?: number;
  readonly hostBytesPerMicrobatch?: number;
}

export interface PipelineMeasurement {
  readonly wallMs: number;
  readonly devices: readonly DeviceMeasurement[];
  readonly elements: readonly ElementMeasurement[];
  /** Wall time during which at least one transfer was moving bytes (its waits for source devices excluded). */
  readonly commMs: number;
  /** Fill-drain with shared lanes: sum(t_i) + (m - 1) * (the busiest lane's sum of t_i per microbatch). */
  readonly predictedMs: number;
  /** The textbook formula, as if every element had a device of its own: sum(t_i) + (m - 1) * max(t_i). */
  readonly naivePredictedMs: number;
  readonly predictionErrorPercent: number;
  readonly idealBubbleFraction: number;
  readonly measuredBubbleFraction: number;
  readonly samplesPerSecond: number;
  readonly meanUtilization: number;
  /**
   * How many devices computed at once, on average, while any did: the sum of their busy times over the
   * union of their kernel spans. Devices that share one adapter's cores stay near 1 however many there are.
   */
  readonly concurrency: number;
  /** The median of the shortest quarter of kernel spans: what a dispatch costs however little it does. */
  readonly smallKernelMs: number;
  /** The host thread's CPU time over the run, and its share of the wall time; null where not reported. */
  readonly hostCpuMs: number | null;
  readonly hostBusyFraction: number | null;
}

export interface Interval {
  readonly startNs: number;
  readonly endNs: number;
}

/** Total length of the union of intervals, clipped to [from, to]. */
export function unionMs(
  intervals: readonly Interval[],
  from = Number.NEGATIVE_INFINITY,
  to = Number.POSITIVE_INFINITY,
): number {
  const sorted = intervals
    .map((i) => ({ startNs: Math.max(i.startNs, from), endNs: Math.min(i.endNs, to) }))
    .filter((i) => i.endNs > i.startNs)
    .sort((a, b) => a.startNs - b.startNs);
  let total = 0;
  let end = Number.NEGATIVE_INFINITY;
  for (const i of sorted) {
    if (i.startNs > end) {
      total += i.endNs - i.startNs;
      end = i.endNs;
    } else if (i.endNs > end) {
      total += i.endNs - end;
      end = i.endNs;
    }
  }
  return total / 1e6;
}

/**
 * When each transfer's bytes could start to move: the end of the last kernel its source devices had been
 * given before the transfer started (its reads queue behind those), from device timestamps. Where a source
 * device has no timestamps, the host's observation (`CommSpan.readyNs`) stands; it can be late by a poll
 * interval, since it arrives with the same event-loop tick as the reads' own completion.
 */
export function transferReadyNs(
  run: ExecutionResult,
  spans: ReadonlyMap<MeasuredDevice, readonly KernelSpan[]>,
  elements: readonly PipelineElement[],
): number[] {
  const byId = new Map([...spans].map(([device, list]) => [device.id, list]));
  return run.comms.map((c) => {
    const producer = elements[c.element - 1];
    if (producer?.kind !== 'compute') return Math.max(c.startNs, c.readyNs);
    let ready = c.startNs;
    for (const lane of lanesOf(producer, c.microbatch)) {
      const list = byId.get(lane as number) ?? [];
      if (list.some((s) => s.submittedNs === undefined)) return Math.max(c.startNs, c.readyNs);
      for (const s of list) if (s.submittedNs! <= c.startNs && s.endNs > ready) ready = s.endNs;
    }
    return Math.min(ready, c.endNs);
  });
}

/**
 * Across ranks every rank that takes part in a communication times it: one transfer, started when the
 * last rank holding a source started it (a rank that only receives may start waiting long before),
 * ready when the last of them saw its sources finish, done when the last rank had its bytes, with the
 * bytes every rank moved through its host. One process's spans pass as they are.
 */
export function mergeRankComms(run: ExecutionResult): ExecutionResult {
  if (!run.comms.some((c) => c.rank !== undefined)) return run;
  const merged = new Map<string, CommSpan>();
  for (const c of run.comms) {
    const key = `${c.element}/${c.microbatch}`;
    const seen = merged.get(key);
    const sends = c.holdsSources !== false;
    const own = {
      ...c,
      startNs: sends ? c.startNs : Number.NEGATIVE_INFINITY,
      readyNs: sends ? c.readyNs : Number.NEGATIVE_INFINITY,
    };
    merged.set(
      key,
      seen
        ? {
            ...seen,
            startNs: Math.max(seen.startNs, own.startNs),
            readyNs: Math.max(seen.readyNs, own.readyNs),
            endNs: Math.max(seen.endNs, c.endNs),
            hostBytes: seen.hostBytes + c.hostBytes,
          }
        : own,
    );
  }
  const comms = [...merged.values()].map((c) => {
    const startNs = Math.min(c.startNs, c.endNs);
    return {
      element: c.element,
      microbatch: c.microbatch,
      startNs,
      readyNs: Math.min(Math.max(c.readyNs, startNs), c.endNs),
      endNs: c.endNs,
      hostBytes: c.hostBytes,
    };
  });
  return { ...run, comms };
}

/**
 * Turns one run's kernel spans and transfer times into the figures of the report. The prediction is the
 * fill-drain formula over the measured element times: sum(t_i) + (m - 1) * max(t_i).
 */
export function measurePipeline(
  recorded: ExecutionResult,
  spans: ReadonlyMap<MeasuredDevice, readonly KernelSpan[]>,
  elements: readonly PipelineElement[],
  microbatches: number,
  batchSize: number,
): PipelineMeasurement {
  const run = mergeRankComms(recorded);
  const wallMs = (run.endNs - run.startNs) / 1e6;
  const devices: DeviceMeasurement[] = [...spans.entries()].map(([device, list]) => {
    const busyMs = unionMs(list, run.startNs, run.endNs);
    const stages = elements
      .filter((e) => e.kind === 'compute' && e.stage.devices.includes(device.id))
      .map((e) => e.name);
    return {
      device: device.id,
      name: device.name,
      ...(device.rank === undefined ? {} : { rank: device.rank }),
      busyMs,
      utilization: busyMs / wallMs,
      idleFraction: 1 - busyMs / wallMs,
      kernels: list.length,
      peakBytes: device.ledger.peakBytes,
      stages,
    };
  });
  const readyNs = transferReadyNs(run, spans, elements);
  const moving = run.comms.map((c, i) => ({ startNs: readyNs[i]!, endNs: c.endNs }));
  const measured: ElementMeasurement[] = elements.map((element) => {
    const perMb: number[] = [];
    const busyPerMb: number[] = [];
    const kernelsPerMb: number[] = [];
    const waits: number[] = [];
    for (let mb = 0; mb < microbatches; mb++) {
      if (element.kind === 'comm') {
        const i = run.comms.findIndex((x) => x.element === element.index && x.microbatch === mb);
        if (i < 0) continue;
        const c = run.comms[i]!;
        perMb.push((c.endNs - readyNs[i]!) / 1e6);
        waits.push((readyNs[i]! - c.startNs) / 1e6);
        continue;
      }
      // Each device's own window for the stage (its first kernel to its last); the slowest device sets the
      // stage's time. A window across devices would count one device waiting for another as stage time.
      const tag = `${element.name}/mb${mb}`;
      let slowest = 0;
      let busy = 0;
      let kernels = 0;
      for (const list of spans.values()) {
        const mine = list.filter((s) => s.tag === tag);
        if (mine.length === 0) continue;
        const window =
          (Math.max(...mine.map((s) => s.endNs)) - Math.min(...mine.map((s) => s.startNs))) / 1e6;
        if (window > slowest) {
          slowest = window;
          busy = unionMs(mine);
          kernels = mine.length;
        }
      }
      if (slowest > 0) {
        perMb.push(slowest);
        busyPerMb.push(busy);
        kernelsPerMb.push(kernels);
      }
    }
    const bytes =
      element.kind === 'comm' ? run.comms.find((x) => x.element === element.index)?.hostBytes : undefined;
    return {
      name: element.name,
      kind: element.kind,
      medianMs: median(perMb),
      perMicrobatchMs: perMb,
      ...(waits.length === 0 ? {} : { medianWaitMs: median(waits) }),
      ...(busyPerMb.length === 0
        ? {}
        : { medianBusyMs: median(busyPerMb), kernelsPerMicrobatch: median(kernelsPerMb) }),
      ...(bytes === undefined ? {} : { hostBytesPerMicrobatch: bytes }),
    };
  });
  const times = measured.map((m) => m.medianMs);
  const fillMs = times.reduce((s, t) => s + t, 0);
  const naivePredictedMs = fillMs + (microbatches - 1) * Math.max(...times);
  // A device that serves two stages (or the host, which runs every transfer) does their work one after
  // the other: in the steady state each step lasts as long as the busiest lane's share of one microbatch.
  const laneMs = new Map<string, number>();
  elements.forEach((element, i) => {
    const lanes = element.kind === 'comm' ? ['host'] : element.stage.devices.map(String);
    for (const lane of lanes) laneMs.set(lane, (laneMs.get(lane) ?? 0) + times[i]!);
  });
  const predictedMs = fillMs + (microbatches - 1) * Math.max(...laneMs.values());
  const allSpans = [...spans.values()].flat();
  const anyBusy = unionMs(allSpans, run.startNs, run.endNs);
  const concurrency = anyBusy > 0 ? devices.reduce((n, d) => n + d.busyMs, 0) / anyBusy : 1;
  const durations = allSpans.map((x) => (x.endNs - x.startNs) / 1e6).sort((a, b) => a - b);
  const smallKernelMs =
    durations.length > 0 ? median(durations.slice(0, Math.max(1, durations.length >> 2))) : 0;
  const p = elements.length;
  const meanUtilization = devices.reduce((s, d) => s + d.utilization, 0) / Math.max(1, devices.length);
  return {
    wallMs,
    devices,
    elements: measured,
    commMs: unionMs(moving),
    predictedMs,
    naivePredictedMs,
    predictionErrorPercent: ((predictedMs - wallMs) / wallMs) * 100,
    idealBubbleFraction: (p - 1) / (microbatches + p - 1),
    measuredBubbleFraction: 1 - meanUtilization,
    samplesPerSecond: batchSize / (wallMs / 1000),
    meanUtilization,
    concurrency,
    smallKernelMs,
    hostCpuMs: run.hostCpuMs,
    hostBusyFraction: run.hostCpuMs === null ? null : run.hostCpuMs / wallMs,
  };
}
