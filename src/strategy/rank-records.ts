import type { ClockOffset } from '../distributed/clock-sync.js';
import type { KernelSpan } from '../runtime/device.js';
import type { CommSpan, ExecutionResult } from './executor.js';
import type { MeasuredDevice } from './measure.js';
import type { RecordedRuns } from './measure-runs.js';

/** A run as a rank reports it to rank 0: plain JSON, its outputs as arrays (null for another rank's). */
interface RunRecord {
  readonly startNs: number;
  readonly endNs: number;
  readonly hostCpuMs: number | null;
  readonly comms: readonly CommSpan[];
  readonly outputs: readonly (number[] | null)[];
}

interface DeviceRecord {
  readonly id: number;
  readonly name: string;
  readonly adapter: string;
  readonly software: boolean;
  readonly timestamps: boolean;
  readonly peakBytes: number;
  /** Its spans in each pipelined run. */
  readonly spans: readonly (readonly KernelSpan[])[];
}

/** Everything one rank measured: what rank 0 merges into the world's one report. */
export interface RankRecord {
  readonly rank: number;
  readonly devices: readonly DeviceRecord[];
  readonly pipelined: readonly RunRecord[];
  readonly sequential: readonly RunRecord[];
  readonly repeats: number;
}

/** A device as the world's report sees it: wherever it ran, with the rank that owns it. */
export interface WorldDevice extends MeasuredDevice {
  readonly rank: number;
  readonly software: boolean;
  readonly timestamps: boolean;
}

function runRecord(run: ExecutionResult): RunRecord {
  return {
    startNs: run.startNs,
    endNs: run.endNs,
    hostCpuMs: run.hostCpuMs,
    comms: run.comms,
    outputs: Array.from({ length: run.outputs.length }, (_, i) => {
      const o = run.outputs[i];
      return o ? Array.from(o) : null;
    }),
  };
}

/** This rank's recorded runs, as it sends them to rank 0. */
export function rankRecord(
  rank: number,
  recorded: RecordedRuns,
  devices: readonly {
    id: number;
    name: string;
    adapter: { name: string; isSoftware: boolean };
    hasDeviceTimestamps: boolean;
    ledger: { peakBytes: number };
  }[],
): RankRecord {
  return {
    rank,
    devices: devices.map((d) => ({
      id: d.id,
      name: d.name,
      adapter: d.adapter.name,
      software: d.adapter.isSoftware,
      timestamps: d.hasDeviceTimestamps,
      peakBytes: d.ledger.peakBytes,
      spans: recorded.pipelined.map(
        (p) => [...p.spans.entries()].find(([device]) => device.id === d.id)?.[1] ?? [],
      ),
    })),
    pipelined: recorded.pipelined.map((p) => runRecord(p.run)),
    sequential: recorded.sequential.map(runRecord),
    repeats: recorded.repeats,
  };
}

/**
 * Every rank's records as one world's runs, on rank 0's clock (each rank's times less its offset): a run
 * lasts from the first rank starting it to the last one done, its transfers are every rank's, and each
 * microbatch's output comes from the rank that computed it.
 */
export function mergeRankRecords(
  records: readonly RankRecord[],
  clocks: readonly ClockOffset[],
): { recorded: RecordedRuns; devices: WorldDevice[] } {
  const shift = (rank: number) => clocks.find((c) => c.rank === rank)?.offsetNs ?? 0;
  const devices: WorldDevice[] = records.flatMap((r) =>
    r.devices.map((d) => ({
      id: d.id,
      name: d.name,
      rank: r.rank,
      adapter: { name: d.adapter },
      ledger: { peakBytes: d.peakBytes },
      software: d.software,
      timestamps: d.timestamps,
    })),
  );
  const mergeRun = (pick: (r: RankRecord) => RunRecord): ExecutionResult => {
    const runs = records.map((r) => ({ rank: r.rank, run: pick(r), offset: shift(r.rank) }));
    const outputs: Float32Array[] = [];
    for (const { run } of runs) {
      run.outputs.forEach((o, mb) => {
        if (o) outputs[mb] = Float32Array.from(o);
      });
    }
    const cpu = runs.map((x) => x.run.hostCpuMs);
    return {
      startNs: Math.min(...runs.map((x) => x.run.startNs - x.offset)),
      endNs: Math.max(...runs.map((x) => x.run.endNs - x.offset)),
      hostCpuMs: cpu.some((c) => c === null) ? null : cpu.reduce((a, b) => a! + b!, 0),
      comms: runs.flatMap((x) =>
        x.run.comms.map((c) => ({
          ...c,
          rank: x.rank,
          startNs: c.startNs - x.offset,
          readyNs: c.readyNs - x.offset,
          endNs: c.endNs - x.offset,
        })),
      ),
      outputs,
    };
  };
  const repeats = records[0]!.repeats;
  const pipelined = records[0]!.pipelined.map((_, k) => {
    const spans = new Map<MeasuredDevice, readonly KernelSpan[]>();
    for (const r of records) {
      const offset = shift(r.rank);
      for (const d of r.devices) {
        const device = devices.find((x) => x.rank === r.rank && x.id === d.id)!;
        spans.set(
          device,
          (d.spans[k] ?? []).map((s) => ({
            ...s,
            startNs: s.startNs - offset,
            endNs: s.endNs - offset,
            ...(s.submittedNs === undefined ? {} : { submittedNs: s.submittedNs - offset }),
          })),
        );
      }
    }
    return { run: mergeRun((r) => r.pipelined[k]!), spans };
  });
  const sequential = records[0]!.sequential.map((_, k) => mergeRun((r) => r.sequential[k]!));
  return { recorded: { pipelined, sequential, repeats }, devices };
}
