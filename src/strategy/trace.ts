import type { KernelSpan } from '../runtime/device.js';
import type { ExecutionResult } from './executor.js';
import { type MeasuredDevice, transferReadyNs } from './measure.js';
import type { PipelineElement } from './schedule.js';

interface TraceEvent {
  readonly name: string;
  readonly ph: 'X' | 'M';
  readonly pid: number;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly args?: Record<string, unknown>;
}

const HOST_TID = 1000;

/**
 * The run as a Chrome trace (opens in Perfetto): one track per device with its kernels, one for the host's
 * transfers. Across ranks each rank is a process (pid rank + 1) with its devices and its host; the times
 * are on rank 0's clock already.
 */
export function chromeTrace(
  run: ExecutionResult,
  spans: ReadonlyMap<MeasuredDevice, readonly KernelSpan[]>,
  elements: readonly PipelineElement[],
): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
  const us = (ns: number) => (ns - run.startNs) / 1000;
  const ranks = new Set([...spans.keys()].map((d) => d.rank).filter((r) => r !== undefined));
  const pidOf = (rank: number | undefined) => (rank ?? 0) + 1;
  const events: TraceEvent[] =
    ranks.size === 0
      ? [{ name: 'process_name', ph: 'M', pid: 1, tid: 0, args: { name: 'webgpu-parallel run' } }]
      : [...ranks].map((r) => ({
          name: 'process_name',
          ph: 'M' as const,
          pid: pidOf(r),
          tid: 0,
          args: { name: `rank ${r}` },
        }));
  for (const [device, list] of spans) {
    const pid = pidOf(device.rank);
    events.push({
      name: 'thread_name',
      ph: 'M',
      pid,
      tid: device.id,
      args: { name: `${device.name} (${device.adapter.name})` },
    });
    for (const s of list) {
      events.push({
        name: s.label,
        cat: s.tag,
        ph: 'X',
        pid,
        tid: device.id,
        ts: us(s.startNs),
        dur: (s.endNs - s.startNs) / 1000,
        args: { stage: s.tag },
      });
    }
  }
  const hosts = ranks.size === 0 ? [undefined] : [...ranks];
  for (const r of hosts) {
    events.push({
      name: 'thread_name',
      ph: 'M',
      pid: pidOf(r),
      tid: HOST_TID,
      args: { name: 'host (transfers)' },
    });
  }
  const ready = transferReadyNs(run, spans, elements);
  for (const [i, c] of run.comms.entries()) {
    const name = `${elements[c.element]!.name}/mb${c.microbatch}`;
    const pid = pidOf(c.rank);
    const readyNs = ready[i]!;
    if (readyNs > c.startNs) {
      events.push({
        name: `${name} (waiting for its sources)`,
        cat: 'waiting',
        ph: 'X',
        pid,
        tid: HOST_TID,
        ts: us(c.startNs),
        dur: (readyNs - c.startNs) / 1000,
      });
    }
    events.push({
      name,
      cat: 'communication',
      ph: 'X',
      pid,
      tid: HOST_TID,
      ts: us(readyNs),
      dur: (c.endNs - readyNs) / 1000,
      args: { hostBytes: c.hostBytes },
    });
  }
  return { traceEvents: events, displayTimeUnit: 'ms' };
}
