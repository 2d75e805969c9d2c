import { verdictOf } from '../strategy/report.js';
import type { OutputCheck, StrategyRun } from '../strategy/run-strategy.js';

/** One bar of the timeline: a kernel on a device, or a transfer (or a transfer's wait) on the host. */
export interface TimelineSpan {
  /** Index into `TimelineData.lanes`. */
  readonly lane: number;
  readonly kind: 'kernel' | 'transfer' | 'wait';
  readonly label: string;
  /** The stage or communication it belongs to. */
  readonly element: string;
  readonly microbatch: number | null;
  /** Milliseconds from the start of the run. */
  readonly startMs: number;
  readonly endMs: number;
}

export interface TimelineDevice {
  readonly id: number;
  readonly name: string;
  readonly utilization: number;
  readonly busyMs: number;
  /** The ledger's peak, the validator's estimate (null where it has none), and the strategy's cap. */
  readonly peakBytes: number;
  readonly estimatedBytes: number | null;
  readonly capBytes: number;
}

/** What the HTML timeline and bars show, taken from one run: plain data, so it can be stored and redrawn. */
export interface TimelineData {
  readonly title: string;
  readonly verdict: string;
  readonly adapter: string;
  readonly backend: string;
  readonly microbatches: number;
  readonly findings: readonly { severity: string; code: string; message: string }[];
  readonly checks: readonly OutputCheck[];
  readonly devices: readonly TimelineDevice[];
  readonly lanes: readonly string[];
  readonly spans: readonly TimelineSpan[];
  readonly wallMs: number;
  readonly predictedMs: number;
  readonly predictionErrorPercent: number;
  readonly sequentialWallMs: number | null;
}

interface TraceEvent {
  readonly name: string;
  readonly ph: string;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly args?: { readonly name?: string; readonly stage?: string };
}

const MICROBATCH = /\/mb(\d+)/;

function microbatchOf(text: string): number | null {
  const match = MICROBATCH.exec(text);
  return match ? Number(match[1]) : null;
}

/** The timeline's data from a run: its Chrome trace (strategy/trace.ts) and its measured figures. */
export function timelineData(run: StrategyRun): TimelineData {
  const events = (run.trace as { traceEvents?: readonly TraceEvent[] } | null)?.traceEvents ?? [];
  const tids = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.tid);
  const laneOf = new Map(tids.map((tid, i) => [tid, i]));
  // "webgpu:0 (adapter)" -> "webgpu:0": the header names the adapter once; the host's lane keeps its note.
  const lanes = events
    .filter((e) => e.ph === 'M' && e.name === 'thread_name')
    .map((e) => e.args?.name ?? '')
    .map((name) => (name.startsWith('host') ? name : name.replace(/ \(.*\)$/, '')));
  const spans: TimelineSpan[] = [];
  for (const e of events) {
    if (e.ph !== 'X' || e.ts === undefined) continue;
    const lane = laneOf.get(e.tid);
    if (lane === undefined) continue;
    const kind = e.cat === 'communication' ? 'transfer' : e.cat === 'waiting' ? 'wait' : 'kernel';
    const tag = kind === 'kernel' ? (e.args?.stage ?? e.cat ?? '') : e.name;
    spans.push({
      lane,
      kind,
      label: e.name,
      element: tag.replace(MICROBATCH, '').replace(/ \(waiting.*$/, ''),
      microbatch: microbatchOf(tag),
      startMs: e.ts / 1000,
      endMs: (e.ts + (e.dur ?? 0)) / 1000,
    });
  }
  const p = run.pipelined;
  const cap = run.strategy.hardware.memory_per_device_bytes;
  return {
    title: run.strategy.name ?? 'strategy',
    verdict: verdictOf(run),
    adapter: run.adapter,
    backend: run.backend,
    microbatches: run.strategy.batch.microbatches,
    findings: run.findings.map((f) => ({ severity: f.severity, code: f.code, message: f.message })),
    checks: run.checks,
    devices: p.devices.map((d) => ({
      id: d.device,
      name: d.name,
      utilization: d.utilization,
      busyMs: d.busyMs,
      peakBytes: run.memoryMeasured?.find((m) => m.device === d.device)?.peak ?? d.peakBytes,
      estimatedBytes: run.memoryEstimate.find((m) => m.device === d.device)?.total ?? null,
      capBytes: cap,
    })),
    lanes,
    spans,
    wallMs: p.wallMs,
    predictedMs: p.predictedMs,
    predictionErrorPercent: p.predictionErrorPercent,
    sequentialWallMs: run.sequentialWallMs,
  };
}
