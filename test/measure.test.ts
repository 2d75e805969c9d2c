import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuDevice } from '../src/runtime/cpu-device.js';
import type { KernelSpan } from '../src/runtime/device.js';
import type { CommSpan, ExecutionResult } from '../src/strategy/executor.js';
import { measurePipeline } from '../src/strategy/measure.js';
import { transferWaits } from '../src/strategy/recommend.js';
import { pipelineElements } from '../src/strategy/schedule.js';
import { chromeTrace } from '../src/strategy/trace.js';
import { validateStrategy } from '../src/strategy/validate.js';

const MS = 1e6;

/** The seed-fits elements: embed_1, embed_to_expert, expert_2, expert_to_agg, agg_3. */
function seedElements() {
  const text = readFileSync(new URL('../examples/seed-fits.json', import.meta.url), 'utf8');
  const { strategy, plans } = validateStrategy(JSON.parse(text));
  return pipelineElements(plans, strategy!.communications);
}

const span = (tag: string, from: number, to: number): KernelSpan => ({
  label: 'k',
  tag,
  startNs: from * MS,
  endNs: to * MS,
});

const comm = (element: number, from: number, ready: number, to: number): CommSpan => ({
  element,
  microbatch: 0,
  startNs: from * MS,
  readyNs: ready * MS,
  endNs: to * MS,
  hostBytes: 1024,
});

describe('pipeline measurement from spans', () => {
  // One microbatch, by hand: the host starts each transfer while its sources still compute.
  const devices = [new CpuDevice(0), new CpuDevice(1), new CpuDevice(2)];
  const spans = new Map([
    [devices[0]!, [span('embed_1/mb0', 0, 2)]],
    [devices[1]!, [span('embed_1/mb0', 0, 3), span('expert_2/mb0', 4, 10)]],
    [devices[2]!, [span('expert_2/mb0', 4, 9), span('agg_3/mb0', 12, 13)]],
  ]);
  const run: ExecutionResult = {
    startNs: 0,
    endNs: 14 * MS,
    hostCpuMs: 3.5,
    // embed_to_expert starts at 1 ms, waits for embed_1 until 3, moves bytes until 4; expert_to_agg starts
    // at 4, waits until 10, moves until 12.
    comms: [comm(1, 1, 3, 4), comm(3, 4, 10, 12)],
    outputs: [],
  };
  const m = measurePipeline(run, spans, seedElements(), 1, 4);

  it('counts a transfer from when its sources were ready, and its wait beside it', () => {
    const [embed, toExpert, expert, toAgg, agg] = m.elements;
    expect(toExpert).toMatchObject({
      kind: 'comm',
      medianMs: 1,
      medianWaitMs: 2,
      hostBytesPerMicrobatch: 1024,
    });
    expect(toAgg).toMatchObject({ kind: 'comm', medianMs: 2, medianWaitMs: 6 });
    // A stage's time is its slowest device's own window.
    expect(embed).toMatchObject({ kind: 'compute', medianMs: 3 });
    expect(expert!.medianMs).toBe(6);
    expect(agg!.medianMs).toBe(1);
    expect(embed!.medianWaitMs).toBeUndefined();
  });

  it('counts as communication time only the time bytes were moving', () => {
    expect(m.commMs).toBe(3);
    expect(m.wallMs).toBe(14);
    expect(m.hostBusyFraction).toBe(0.25);
    expect(m.devices.map((d) => d.busyMs)).toEqual([2, 9, 6]);
  });

  it('predicts from the transfer times, not the waits', () => {
    // One microbatch: the fill alone, the sum of the element times.
    expect(m.predictedMs).toBe(3 + 1 + 6 + 2 + 1);
  });

  it('draws the wait and the transfer as two spans on the host track', () => {
    const host = chromeTrace(run, spans, seedElements()).traceEvents.filter(
      (e) => e.tid === 1000 && e.ph === 'X',
    );
    expect(host.map((e) => [e.name, e.ts, e.dur])).toEqual([
      ['embed_to_expert/mb0 (waiting for its sources)', 1000, 2000],
      ['embed_to_expert/mb0', 3000, 1000],
      ['expert_to_agg/mb0 (waiting for its sources)', 4000, 6000],
      ['expert_to_agg/mb0', 10000, 2000],
    ]);
  });

  it('takes the ready time from device timestamps where every source kernel has them', () => {
    const timed = (tag: string, from: number, to: number, submitted: number): KernelSpan => ({
      ...span(tag, from, to),
      submittedNs: submitted * MS,
    });
    const stamped = new Map([
      [devices[0]!, [timed('embed_1/mb0', 0, 2, 0)]],
      // Devices 1 and 2 were given expert_2's kernels at 3.9 ms, after embed_to_expert started: its reads do not wait for them.
      [devices[1]!, [timed('embed_1/mb0', 0, 3, 0), timed('expert_2/mb0', 4, 10, 3.9)]],
      [devices[2]!, [timed('expert_2/mb0', 4, 9, 3.9), timed('agg_3/mb0', 12, 13, 12)]],
    ]);
    // The host saw the sources ready late (3.8 and 11.5 ms, with the reads' completion); the kernels ended at 3 and 10.
    const late = { ...run, comms: [comm(1, 1, 3.8, 4), comm(3, 4, 11.5, 12)] };
    const timedRun = measurePipeline(late, stamped, seedElements(), 1, 4);
    expect(timedRun.elements[1]).toMatchObject({ medianMs: 1, medianWaitMs: 2 });
    expect(timedRun.elements[3]).toMatchObject({ medianMs: 2, medianWaitMs: 6 });
    // Without timestamps on a source device, the host's observation stands.
    const hostOnly = measurePipeline(late, spans, seedElements(), 1, 4);
    expect(hostOnly.elements[1]!.medianMs).toBeCloseTo(0.2, 9);
  });

  it('treats a ready time before the start (sources idle) as no wait', () => {
    const idle = measurePipeline(
      { ...run, comms: [comm(1, 3, 2, 4), comm(3, 10, 10, 12)] },
      spans,
      seedElements(),
      1,
      4,
    );
    expect(idle.elements[1]).toMatchObject({ medianMs: 1, medianWaitMs: 0 });
  });
});

describe('the transfer-wait recommendation', () => {
  const elements = seedElements();
  const measured = (name: string, kind: 'compute' | 'comm', medianMs: number, medianWaitMs?: number) => ({
    name,
    kind,
    medianMs,
    perMicrobatchMs: [medianMs],
    ...(medianWaitMs === undefined ? {} : { medianWaitMs }),
  });
  const runWith = (toExpertWait: number, toAggWait: number) =>
    ({
      schedule: { elements },
      pipelined: {
        elements: [
          measured('embed_1', 'compute', 1),
          measured('embed_to_expert', 'comm', 0.1, toExpertWait),
          measured('expert_2', 'compute', 18),
          measured('expert_to_agg', 'comm', 3.5, toAggWait),
          measured('agg_3', 'compute', 4),
        ],
      },
    }) as unknown as Parameters<typeof transferWaits>[0];

  it('names the transfer, its wait and the stage sharing its source devices', () => {
    const [text, more] = transferWaits(runWith(12.5, 1));
    expect(more).toBeUndefined(); // expert_to_agg waited less than twice its own time
    expect(text).toContain('Transfer embed_to_expert waited a median 12.5 ms for its sources');
    expect(text).toContain('(0.10 ms): device 1 also runs expert_2');
    expect(text).toContain('Devices of its own for embed_1');
  });

  it('says nothing of short waits', () => {
    expect(transferWaits(runWith(0.5, 2))).toEqual([]);
  });
});
