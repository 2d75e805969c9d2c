import { formatBytes } from '../format.js';
import { formatFindings } from './findings.js';
import { loadWord, recommendations } from './recommend.js';
import {
  chainModelLines,
  expertLines,
  memoryLines,
  modelLines,
  ms,
  pct,
  rankLines,
  ranksSentence,
  sharingSentence,
  spreadRange,
  withSpread,
} from './report-sections.js';
import type { StrategyRun } from './run-strategy.js';
import { formatScheduleGrid } from './schedule.js';
import type { ModelStrategy, Strategy } from './schema.js';

export type Verdict = 'SOUND' | 'SOUND, CLAIMS NOT MET' | 'WRONG RESULTS' | 'OUTPUTS NOT CHECKED';

export function verdictOf(run: StrategyRun): Verdict {
  if (run.checks.length === 0) return 'OUTPUTS NOT CHECKED';
  if (!run.checks.every((c) => c.passed)) return 'WRONG RESULTS';
  const claimed = run.strategy.claims?.gpu_utilization;
  if (claimed !== undefined && run.pipelined.meanUtilization + 0.05 < claimed) return 'SOUND, CLAIMS NOT MET';
  return 'SOUND';
}

/** The report as data: what `--json` prints. */
export function reportJson(run: StrategyRun): Record<string, unknown> {
  const { trace: _trace, schedule, repeatsMeasured, ...rest } = run;
  return {
    verdict: verdictOf(run),
    ...rest,
    schedule: {
      steps: schedule.steps,
      lanes: schedule.lanes,
      elements: schedule.elements.map((e) => ({ name: e.name, kind: e.kind })),
    },
    repeatWallMs: repeatsMeasured.map((r) => r.wallMs),
    recommendations: recommendations(run),
  };
}

/** The report for people, in the seed's shape, every figure from the run. */
export function reportMarkdown(run: StrategyRun, file: string): string {
  const p = run.pipelined;
  const s = run.strategy;
  const verdict = verdictOf(run);
  const maxBusy = Math.max(...p.devices.map((d) => d.busyMs));
  const speedup = run.sequentialWallMs ? run.sequentialWallMs / p.wallMs : null;
  const lines: string[] = [];
  lines.push(`# Parallel Strategy Report: ${s.name ?? file}`, '');
  lines.push('## Executive Summary');
  const sequences = s.batch.batch_size / s.batch.microbatches;
  lines.push(
    `**Verdict: ${verdict}.** The strategy was validated, then run for real: ${s.hardware.device_count} ${run.backend} devices on ` +
      `\`${run.adapter}\`${run.isSoftwareAdapter ? ' (a software adapter: these are CPU figures)' : ''}` +
      `${run.requestedBackend === 'auto' && run.backend === 'gpujs' ? ' (no WebGPU adapter answered, so the gpu.js fallback ran)' : ''}, ${s.batch.microbatches} microbatches of ` +
      `${sequences} sequences × ${run.seqLen} tokens.`,
  );
  lines.push('');
  for (const c of run.checks) {
    lines.push(
      `- ${run.family === 'model' ? 'Logits' : 'Output'} against ${c.against}: max |error| ${c.maxAbsError.toExponential(2)} ` +
        `(tolerance ${c.scale === undefined ? c.tolerance : `${c.tolerance.toExponential(2)}, 1e-4 of the largest logit ${c.scale.toFixed(3)}`}): ${c.passed ? 'passed' : 'FAILED'}.`,
    );
  }
  const walls = run.repeatsMeasured.map((r) => r.wallMs);
  lines.push(
    `- Pipelined wall time ${withSpread(p.wallMs, walls)}, ${p.samplesPerSecond.toFixed(1)} samples/s` +
      (speedup
        ? `; the same microbatches one after another took ${withSpread(run.sequentialWallMs!, run.sequentialWallMsPerRepeat)} (pipelining: ${speedup.toFixed(2)}×; medians of ${run.repeats} alternating runs of each).`
        : '.'),
  );
  lines.push(
    `- Mean device utilization ${pct(p.meanUtilization)}` +
      (s.claims?.gpu_utilization !== undefined ? ` against ${pct(s.claims.gpu_utilization)} claimed.` : '.'),
  );
  lines.push(
    `- Predicted time from the measured stage times ${ms(p.predictedMs)} vs measured ${ms(p.wallMs)}: error ${p.predictionErrorPercent.toFixed(1)}%.`,
  );
  const shared = sharingSentence(run.sharing, run.adapter);
  if (shared) lines.push(`- ${shared}`);
  const ranks = ranksSentence(run);
  if (ranks) lines.push(`- ${ranks}`);
  lines.push('');
  lines.push('## Compatibility');
  lines.push(
    `- Hardware: ${s.hardware.device_count} devices opened (${run.backend}, timestamps ${run.hasDeviceTimestamps ? 'from the device' : 'from the host clock'}); every device id in stages and communications is within 0..${s.hardware.device_count - 1}.`,
  );
  lines.push(
    ...(run.family === 'model' ? modelLines(s as ModelStrategy, run) : chainModelLines(s as Strategy, run)),
  );
  for (const e of run.schedule.elements) {
    if (e.kind === 'comm') {
      lines.push(
        `- Communication \`${e.name}\`: ${e.comm.op} from [${e.comm.from.join(', ')}] to [${e.comm.to.join(', ')}], moving only what the next stage reads.`,
      );
    }
  }
  lines.push(`- Memory: cap ${formatBytes(s.hardware.memory_per_device_bytes)} per device.`);
  lines.push('', ...memoryLines(run));
  lines.push('');
  if (run.findings.length > 0) {
    lines.push('Validation findings:', '```', formatFindings(file, run.findings).trimEnd(), '```', '');
  }
  lines.push('## Measured Performance');
  lines.push(
    '| element | kind | median per microbatch | waited for its sources | host bytes per microbatch | median in each run |',
    '|---|---|---|---|---|---|',
  );
  p.elements.forEach((e, i) => {
    const each = run.repeatsMeasured.map((r) => r.elements[i]!.medianMs);
    lines.push(
      `| ${e.name} | ${e.kind} | ${ms(e.medianMs)} | ${e.medianWaitMs === undefined ? '-' : ms(e.medianWaitMs)} | ${e.hostBytesPerMicrobatch === undefined ? '-' : formatBytes(e.hostBytesPerMicrobatch)} | ${spreadRange(each)} |`,
    );
  });
  lines.push('');
  lines.push(
    '- A transfer counts from when its source devices had finished the work queued before it (the kernels ' +
      'of the stage it carries, and of any other stage on those devices) to when the host had moved its bytes; ' +
      'the wait before that is the column beside it.',
  );
  lines.push(
    `- Time with a transfer moving bytes: ${ms(p.commMs)} (${pct(p.commMs / p.wallMs)} of the wall time).`,
  );
  if (p.hostCpuMs !== null && p.hostBusyFraction !== null) {
    lines.push(
      `- Host thread (issues every kernel, moves every transfer's bytes): on the CPU ${ms(p.hostCpuMs)}, ` +
        `${pct(p.hostBusyFraction)} of the wall time${run.isSoftwareAdapter ? ', on the same cores the software adapter computes on' : ''}.`,
    );
  }
  lines.push(
    `- Bubble: ideal fill-drain ${pct(p.idealBubbleFraction)}; measured idle ${pct(p.measuredBubbleFraction)} (mean over devices).`,
  );
  lines.push(
    `- Throughput: ${p.samplesPerSecond.toFixed(1)} samples/s, ${(p.samplesPerSecond * run.seqLen).toFixed(0)} tokens/s.`,
  );
  lines.push('');
  lines.push('## Load Distribution (measured)');
  lines.push(
    '| device | stages | busy | utilization | idle | kernels | load | busy in each run |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const d of p.devices) {
    const busy = run.repeatsMeasured.map((r) => r.devices.find((x) => x.device === d.device)?.busyMs ?? 0);
    lines.push(
      `| ${d.device} | ${d.stages.join(', ') || '-'} | ${ms(d.busyMs)} | ${pct(d.utilization)} | ${pct(d.idleFraction)} | ${d.kernels} | ${loadWord(d.busyMs, maxBusy)} | ${spreadRange(busy)} |`,
    );
  }
  if (shared) lines.push('', `- ${shared}`);
  lines.push('');
  lines.push(...expertLines(run));
  lines.push(...rankLines(run));
  lines.push('## Claims vs Measured');
  if (s.claims?.gpu_utilization !== undefined)
    lines.push(
      `- GPU utilization: claimed ${pct(s.claims.gpu_utilization)}, measured ${pct(p.meanUtilization)} (busiest device ${pct(Math.max(...p.devices.map((d) => d.utilization)))}).`,
    );
  if (s.claims?.samples_per_second !== undefined)
    lines.push(
      `- Throughput: claimed ${s.claims.samples_per_second} samples/s, measured ${p.samplesPerSecond.toFixed(1)}.`,
    );
  if (!s.claims) lines.push('- The strategy makes no claims.');
  lines.push('');
  lines.push('## Recommendations');
  for (const r of recommendations(run)) lines.push(`1. ${r}`);
  lines.push('');
  lines.push('## Schedule (fill-drain, forward)', '```', formatScheduleGrid(run.schedule), '```', '');
  return lines.join('\n');
}
