import { formatBytes } from '../format.js';
import type { StagePlan } from './model-plan.js';
import type { HostSharing, StrategyRun } from './run-strategy.js';
import type { ModelStrategy, Strategy } from './schema.js';
import type { ModelStagePlan } from './stages/decoder.js';

export const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
export const ms = (x: number) => `${x.toFixed(2)} ms`;

/** "12.3 ms (11.9-13.0 over 3 runs)": a figure with its spread across the repeated runs. */
export function withSpread(median: number, values: readonly number[]): string {
  if (values.length < 2) return ms(median);
  return `${ms(median)} (${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)} over ${values.length} runs)`;
}

/** "11.9-13.0 ms (±4%)": the range of repeated figures and their spread. */
export function spreadRange(values: readonly number[]): string {
  if (values.length < 2) return '-';
  return `${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)} ms (spread ${(relativeSpread(values) * 100).toFixed(0)}%)`;
}

/** (max - min) / median of repeated figures: how much a figure moved between runs of the same file. */
export function relativeSpread(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted[(sorted.length - 1) >> 1]!;
  return mid > 0 ? (sorted[sorted.length - 1]! - sorted[0]!) / mid : 0;
}

/** What the devices share, in a sentence: the reason busy times are not a measure of imbalance. */
export function sharingSentence(sharing: HostSharing, adapter: string): string | null {
  if (!sharing.oneAdapter) return null;
  const cores = sharing.software
    ? ` It computes on the host's CPU: all ${sharing.devices} devices share its ${sharing.hostCores} cores with each other and with the host thread.`
    : '';
  return (
    `The ${sharing.devices} devices are logical devices on one adapter (\`${adapter}\`).${cores} ` +
    'Work that runs at once on several of them competes for the same execution units, so a device that looks ' +
    'busier may be waiting for cores rather than doing more work; moving work between them changes the total little.'
  );
}

/** The Compatibility lines of a chain model: its sizes and stages. */
export function chainModelLines(s: Strategy, run: StrategyRun): string[] {
  const lines = [
    `- Model: vocab ${s.model.vocab_size}, hidden ${s.model.hidden_size}, ffn ${s.model.ffn_size}, seq ${s.model.seq_len}, output ${s.model.output_size}.`,
  ];
  for (const e of run.schedule.elements) {
    if (e.kind !== 'compute') continue;
    const st = e.stage as StagePlan;
    lines.push(
      `- Stage \`${e.name}\` (${st.kind}, ${st.mode}) on [${st.devices.join(', ')}]${st.mode === 'column' || st.mode === 'row' ? `, shard sizes [${st.shardSizes.join(', ')}]` : ''}: output ${st.output.placement} on [${st.output.devices.join(', ')}].`,
    );
  }
  return lines;
}

/** The Compatibility lines of a real model: what it is, and each stage's layers, heads and experts. */
export function modelLines(s: ModelStrategy, run: StrategyRun): string[] {
  const info = run.model!;
  const lines = [
    `- Model: ${info.description}, ${info.layers} layers${info.experts ? `, ${info.experts} experts a layer` : ''}; plan ${info.plan}.`,
  ];
  for (const e of run.schedule.elements) {
    if (e.kind !== 'compute') continue;
    const st = e.stage as ModelStagePlan;
    const heads = st.heads?.map((h) => h.qCount).join(', ') ?? '?';
    const kv = st.heads?.map((h) => h.kvHeads.length).join(', ') ?? '?';
    const roles = [
      st.first ? 'the embedding (vocab-parallel)' : '',
      st.last ? 'the final norm and head (vocab-parallel)' : '',
    ]
      .filter(Boolean)
      .join(' and ');
    lines.push(
      `- Stage \`${e.name}\` on [${st.devices.join(', ')}]: layers ${st.firstLayer}-${st.firstLayer + st.layerCount - 1}, ` +
        `query heads [${heads}], KV slots [${kv}], MLP columns [${st.intermediate.join(', ')}]` +
        (st.experts
          ? `, experts ${st.experts.map((g) => `[${g.join(', ')}]`).join(' ')} over ${st.ep} expert group${st.ep > 1 ? 's' : ''}`
          : '') +
        (roles ? `; also ${roles}` : '') +
        '.',
    );
  }
  lines.push(
    `- Batch: ${s.batch.batch_size} sequences of ${s.batch.seq_len} tokens in ${s.batch.microbatches} microbatches.`,
  );
  return lines;
}

/** The memory table: the estimate per device beside what its ledger measured. */
export function memoryLines(run: StrategyRun): string[] {
  const p = run.pipelined;
  if (!run.memoryMeasured) {
    const lines = [
      '| device | estimate | measured peak | weights | activations | staging |',
      '|---|---|---|---|---|---|',
    ];
    for (const m of run.memoryEstimate) {
      const peak = p.devices.find((d) => d.device === m.device)?.peakBytes ?? 0;
      lines.push(
        `| ${m.device} | ${formatBytes(m.total)} | ${formatBytes(peak)} | ${formatBytes(m.weights)} | ${formatBytes(m.activations)} | ${formatBytes(m.staging)} |`,
      );
    }
    return lines;
  }
  const lines = [
    '| device | predicted | measured peak | error | weights (predicted / measured) | KV cache (predicted / measured) | activations + staging (predicted / measured) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const m of run.memoryEstimate) {
    const got = run.memoryMeasured.find((x) => x.device === m.device);
    if (!got) continue;
    const rest = got.peak - got.weights - got.kvCache;
    lines.push(
      `| ${m.device} | ${formatBytes(m.total)} | ${formatBytes(got.peak)} | ${memoryErrorPercent(m.total, got.peak).toFixed(1)}% | ` +
        `${formatBytes(m.weights)} / ${formatBytes(got.weights)} | ${formatBytes(m.kvCache ?? 0)} / ${formatBytes(got.kvCache)} | ` +
        `${formatBytes(m.activations + m.staging)} / ${formatBytes(rest)} |`,
    );
  }
  return lines;
}

export function memoryErrorPercent(predicted: number, measured: number): number {
  return measured > 0 ? ((predicted - measured) / measured) * 100 : 0;
}

/** Mixtral: the measured routing per stage, and the expert moves that would even it. */
export function expertLines(run: StrategyRun): string[] {
  const load = run.expertLoad;
  if (!load) return [];
  const lines = ['## Expert Balance (measured)'];
  lines.push(
    `- ${load.steps} MoE forwards recorded over the measured runs; all_to_all moved ${formatBytes(load.allToAllBytes)} in ${ms(load.allToAllMs)} (wall time, every rail).`,
  );
  for (const st of load.stages) {
    lines.push(
      `- Stage ${st.stage}: rows per expert group [${st.perGroup.join(', ')}] (busiest: group ${st.busiestGroup.group} on ${st.busiestGroup.devices.join(', ')}); ` +
        `tokens per expert [${st.perExpert.join(', ')}]${st.dropped.some((d) => d > 0) ? `, dropped [${st.dropped.join(', ')}]` : ''}.` +
        (st.moves.length > 0
          ? ` Moving ${st.moves.map((mv) => `expert ${mv.expert} from group ${mv.fromGroup} to ${mv.toGroup}`).join(', ')} brings the busiest group to ${st.maxGroupRowsAfter} rows.`
          : ' No single move lowers the busiest group.'),
    );
  }
  lines.push('');
  return lines;
}

/** Across ranks: one summary line for the report's head. */
export function ranksSentence(run: StrategyRun): string | null {
  const r = run.ranks;
  if (!r) return null;
  const owners = r.devices.map((d, rank) => `rank ${rank} [${d.join(', ')}]`).join(', ');
  return (
    `Ran as ${r.worldSize} processes (${owners}), communications between ranks over gRPC; rank 0 gathered every ` +
    `rank's measurements and put their times on its own clock, aligned by pings as NTP does (residual up to ` +
    `±${r.clockResidualMs.toFixed(3)} ms, half the best round trip).`
  );
}

/** Across ranks: each rank's devices and clock, as measured. */
export function rankLines(run: StrategyRun): string[] {
  const r = run.ranks;
  if (!r) return [];
  const lines = [
    '## Ranks',
    '| rank | devices | clock offset to rank 0 | best round trip | residual (half of it) |',
    '|---|---|---|---|---|',
  ];
  for (const c of r.clocks) {
    lines.push(
      `| ${c.rank} | ${(r.devices[c.rank] ?? []).join(', ')} | ${ms(c.offsetMs)} | ${ms(c.rttMs)} | ±${c.residualMs.toFixed(3)} ms |`,
    );
  }
  lines.push(
    '',
    `- Offsets from 8 pings per rank, each offset = ((t1 - t0) + (t2 - t3)) / 2 of the ping with the ` +
      `smallest round trip; every span of another rank in this report and in the trace is shifted by its ` +
      `rank's offset, so times across ranks compare to within ±${r.clockResidualMs.toFixed(3)} ms.`,
    '',
  );
  return lines;
}
