import { relativeSpread } from './report-sections.js';
import type { StrategyRun } from './run-strategy.js';

export type LoadWord = 'light' | 'medium' | 'heavy';

/** Busy time against the busiest device: heavy from 75%, medium from 40%. */
export function loadWord(busyMs: number, maxBusyMs: number): LoadWord {
  const share = maxBusyMs > 0 ? busyMs / maxBusyMs : 0;
  return share >= 0.75 ? 'heavy' : share >= 0.4 ? 'medium' : 'light';
}

/** The smallest microbatch count m, dividing the batch, with (p - 1) / (m + p - 1) under `target`. */
export function microbatchesForBubble(
  stages: number,
  batchSize: number,
  target = 0.1,
): { microbatches: number; divides: boolean } {
  const needed = Math.max(1, Math.floor(((stages - 1) * (1 - target)) / target) + 1);
  for (let m = needed; m <= batchSize; m++)
    if (batchSize % m === 0) return { microbatches: m, divides: true };
  return { microbatches: needed, divides: false };
}

/** Past this share of the wall time on the CPU, the one host thread is what the pipeline waits for. */
const HOST_BOUND_FRACTION = 0.7;

/**
 * A transfer that mostly waited, on a device that also serves another stage: its reads queue behind that
 * stage's kernels, so the next stage starts late. Named with the measured wait and the stage in the way.
 */
export function transferWaits(run: Pick<StrategyRun, 'schedule' | 'pipelined'>): string[] {
  const out: string[] = [];
  const elements = run.schedule.elements;
  run.pipelined.elements.forEach((measured, i) => {
    const producer = elements[i - 1];
    const wait = measured.medianWaitMs;
    if (measured.kind !== 'comm' || producer?.kind !== 'compute' || wait === undefined) return;
    if (wait < 1 || wait < 2 * measured.medianMs) return;
    const others = producer.stage.devices.flatMap((device) =>
      elements
        .filter((e) => e.kind === 'compute' && e !== producer && e.stage.devices.includes(device))
        .map((e) => `device ${device} also runs ${e.name}`),
    );
    if (others.length === 0) return;
    out.push(
      `Transfer ${measured.name} waited a median ${wait.toFixed(1)} ms for its sources before moving its bytes ` +
        `(${measured.medianMs.toFixed(2)} ms): ${[...new Set(others)].join(', ')}, and its reads queue behind those kernels. ` +
        `Devices of its own for ${producer.name} would let it leave as soon as ${producer.name} is done.`,
    );
  });
  return out;
}

/** Recommendations computed from the run's own figures. */
export function recommendations(run: StrategyRun): string[] {
  const out: string[] = [];
  const p = run.pipelined;
  const devices = [...p.devices].sort((a, b) => b.busyMs - a.busyMs);
  const busiest = devices[0]!;
  const idlest = devices[devices.length - 1]!;
  const mean = devices.reduce((s, d) => s + d.busyMs, 0) / devices.length;
  const sharedCores = run.sharing.oneAdapter && run.sharing.software;
  // The busy times of the two devices in question, in every repeated run: the imbalance has to stand out
  // of that spread, or the next run of the same file would point elsewhere.
  const busyIn = (device: number) =>
    run.repeatsMeasured.map((r) => r.devices.find((d) => d.device === device)?.busyMs ?? 0);
  const spread = Math.max(relativeSpread(busyIn(busiest.device)), relativeSpread(busyIn(idlest.device)));
  const heldInEveryRun = run.repeatsMeasured.every((r) => {
    const b = r.devices.find((d) => d.device === busiest.device)?.busyMs ?? 0;
    return r.devices.every((d) => d.device === busiest.device || d.busyMs < b);
  });
  if (busiest.busyMs > 1.25 * mean && devices.length > 1) {
    const imbalance = busiest.busyMs / mean - 1;
    if (sharedCores) {
      out.push(
        `Load: device ${busiest.device} was busy ${busiest.busyMs.toFixed(1)} ms against a mean of ${mean.toFixed(1)} ms, but all ${devices.length} devices ` +
          `are logical devices on one software adapter sharing the host's ${run.sharing.hostCores} cores: a busier device was partly waiting for cores, ` +
          'and moving work to another device moves it onto the same cores. `webgpu-parallel improve FILE` measures what does help here ' +
          '(the microbatch count, fewer tensor-parallel all-reduces per step).',
      );
    } else if (imbalance > spread && heldInEveryRun) {
      const move = busiest.busyMs - mean;
      out.push(
        `Unload device ${busiest.device} (${busiest.stages.join(', ')}): it was busy ${busiest.busyMs.toFixed(1)} ms against a mean of ${mean.toFixed(1)} ms, ` +
          `the busiest in each of ${run.repeatsMeasured.length} runs (busy times spread ${(spread * 100).toFixed(0)}% across them). ` +
          `Moving about ${((move / busiest.busyMs) * 100).toFixed(0)}% of its work (${move.toFixed(1)} ms) to device ${idlest.device} ` +
          `(busy ${idlest.busyMs.toFixed(1)} ms) would even the load; with explicit split sizes a shard can shrink by that share.`,
      );
    } else {
      out.push(
        `Load: device ${busiest.device} was the busiest (${busiest.busyMs.toFixed(1)} ms against a mean of ${mean.toFixed(1)} ms), but not in every ` +
          `one of the ${run.repeatsMeasured.length} runs or not by more than the runs' spread (${(spread * 100).toFixed(0)}%): no move is recommended on these figures.`,
      );
    }
  }
  const needs = Math.max(...run.memoryEstimate.map((m) => m.total), ...p.devices.map((d) => d.peakBytes));
  const cap = run.strategy.hardware.memory_per_device_bytes;
  out.push(
    `Memory: the busiest device needs ${needs} bytes (${(needs / 2 ** 20).toFixed(1)} MiB, the larger of the estimate and the measured peak); ` +
      `the cap is ${(cap / 2 ** 20).toFixed(1)} MiB${needs > cap ? ': raise it' : `, ${((needs / cap) * 100).toFixed(0)}% used`}.`,
  );
  const stages = run.schedule.elements.length;
  const m = run.strategy.batch.microbatches;
  if (p.idealBubbleFraction >= 0.1) {
    if (sharedCores) {
      out.push(
        `Bubble: ${stages} pipeline elements over ${m} microbatches leave a fill-drain bubble of ${(p.idealBubbleFraction * 100).toFixed(0)}%, ` +
          "but on one software adapter a stage's idle time is not idle CPU: the other stages' devices compute on the same cores. " +
          'More microbatches also pay every per-microbatch cost more often; `improve` weighs both from measured costs.',
      );
    } else {
      const pick = microbatchesForBubble(stages, run.strategy.batch.batch_size);
      out.push(
        `Bubble: with ${stages} pipeline elements (stages and transfers) and ${m} microbatches the fill-drain bubble is ${(p.idealBubbleFraction * 100).toFixed(0)}%; ` +
          `${pick.microbatches} microbatches bring it under 10%${pick.divides ? '' : ` (raise batch_size to a multiple of ${pick.microbatches})`}.`,
      );
    }
  }
  const claimed = run.strategy.claims?.gpu_utilization;
  if (claimed !== undefined && p.meanUtilization < claimed) {
    out.push(
      `Utilization: ${(claimed * 100).toFixed(0)}% was claimed, ${(p.meanUtilization * 100).toFixed(0)}% measured (mean over devices). ` +
        'Expect figures near the measured one; more microbatches and a rebalanced load raise it.',
    );
  }
  if (p.hostBusyFraction !== null && p.hostBusyFraction > HOST_BOUND_FRACTION) {
    out.push(
      `Host: the host thread was on the CPU ${(p.hostBusyFraction * 100).toFixed(0)}% of the wall time, issuing kernels and moving transfers' bytes, ` +
        'so it paces the pipeline; fewer, larger microbatches (fewer dispatches and transfers) or fewer stage boundaries relieve it.',
    );
  }
  out.push(...transferWaits(run));
  const commShare = p.commMs / p.wallMs;
  if (commShare > 0.5) {
    out.push(
      `Communication: host-mediated transfers were moving bytes ${(commShare * 100).toFixed(0)}% of the wall time; fewer stage boundaries, or keeping ` +
        'consecutive stages on the same devices, removes transfers.',
    );
  }
  return out;
}
