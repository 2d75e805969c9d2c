import { formatBytes } from '../format.js';
import type { ImproveResult } from './improve.js';
import { reportJson, verdictOf } from './report.js';
import { ms, relativeSpread, sharingSentence, withSpread } from './report-sections.js';
import type { StrategyRun } from './run-strategy.js';

const peak = (run: StrategyRun) => Math.max(...run.pipelined.devices.map((d) => d.peakBytes));
const walls = (run: StrategyRun) => run.repeatsMeasured.map((r) => r.wallMs);

/** Before and after, side by side: both measured in one process, each with its spread over the repeats. */
export function improveMarkdown(result: ImproveResult, file: string, out: string | null): string {
  const { before, after } = result;
  const lines = [`# Improving ${file}`, ''];
  const shared = sharingSentence(before.sharing, before.adapter);
  if (shared) lines.push(`- ${shared}`, '');
  if (!after || !result.improved) {
    lines.push(
      `No improved strategy: measured ${withSpread(before.pipelined.wallMs, walls(before))}, cost model ${ms(result.predictedBeforeMs)}.`,
      '',
    );
    for (const d of result.declined) lines.push(`- ${d}`);
    return `${lines.join('\n')}\n`;
  }
  lines.push('## Moves');
  for (const mv of result.moves) {
    lines.push(`- \`${mv.path}\`: ${JSON.stringify(mv.from)} → ${JSON.stringify(mv.to)}: ${mv.reason}.`);
  }
  for (const d of result.declined) lines.push(`- Not moved: ${d}`);
  lines.push('', '## Before and after (measured in this process, one after the other)');
  lines.push('| | before | after |', '|---|---|---|');
  const row = (label: string, a: string, b: string) => lines.push(`| ${label} | ${a} | ${b} |`);
  row('verdict', verdictOf(before), verdictOf(after));
  row(
    'pipelined wall time',
    withSpread(before.pipelined.wallMs, walls(before)),
    withSpread(after.pipelined.wallMs, walls(after)),
  );
  row(
    'spread over the runs',
    `${(relativeSpread(walls(before)) * 100).toFixed(0)}%`,
    `${(relativeSpread(walls(after)) * 100).toFixed(0)}%`,
  );
  row(
    'predicted by the cost model (from the first run)',
    ms(result.predictedBeforeMs),
    ms(result.predictedMs ?? Number.NaN),
  );
  row('samples/s', before.pipelined.samplesPerSecond.toFixed(1), after.pipelined.samplesPerSecond.toFixed(1));
  row('microbatches', String(before.strategy.batch.microbatches), String(after.strategy.batch.microbatches));
  const stageTimes = (run: StrategyRun) =>
    run.pipelined.elements
      .filter((e) => e.kind === 'compute')
      .map((e) => `${e.name} ${ms(e.medianMs)}`)
      .join(', ');
  row('stage times per microbatch', stageTimes(before), stageTimes(after));
  row('largest device peak', formatBytes(peak(before)), formatBytes(peak(after)));
  row('max |error| (worst check)', before.maxAbsError.toExponential(2), after.maxAbsError.toExponential(2));
  const error = result.predictedMs
    ? ((result.predictedMs - after.pipelined.wallMs) / after.pipelined.wallMs) * 100
    : Number.NaN;
  lines.push(
    '',
    `**Speedup ${result.speedup!.toFixed(2)}×** (median before over median after). The cost model predicted ` +
      `${(result.predictedBeforeMs / (result.predictedMs ?? Number.NaN)).toFixed(2)}×; its prediction for the improved file was off by ${error.toFixed(1)}%.`,
  );
  if (out) lines.push('', `The improved strategy was written to \`${out}\`.`);
  return `${lines.join('\n')}\n`;
}

/** The result as data: what `improve --json` prints (the runs as `run --json` gives them). */
export function improveJson(result: ImproveResult, out: string | null): Record<string, unknown> {
  return {
    improvedFile: out,
    improved: result.improved,
    moves: result.moves,
    declined: result.declined,
    predictedBeforeMs: result.predictedBeforeMs,
    predictedMs: result.predictedMs,
    speedup: result.speedup,
    before: reportJson(result.before),
    after: result.after ? reportJson(result.after) : null,
  };
}
