import { readFileSync } from 'node:fs';
import { runStrategy, type StrategyRun } from '../src/strategy/run-strategy.js';
import type { BenchSink } from './record.js';
import { median } from './record.js';

const EXAMPLES = ['examples/seed-fits.json'];

/**
 * The strategy runner on the seed's fitting variant: pipelined wall time against the same microbatches
 * one after another, both measured in each run, and the fill-drain prediction's error. Each run warms up
 * first (runStrategy compiles every pipeline on a microbatch of its own); the medians are over `runs`.
 */
export async function runPipelineBench(
  sink: BenchSink,
  options: { quick?: boolean; runs?: number } = {},
): Promise<void> {
  const runs = options.quick ? 1 : (options.runs ?? 3);
  for (const file of EXAMPLES) {
    const strategy: unknown = JSON.parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8'));
    const results: StrategyRun[] = [];
    for (let i = 0; i < runs; i++) results.push(await runStrategy(strategy, { backend: 'webgpu' }));
    const first = results[0]!;
    const wall = median(results.map((r) => r.pipelined.wallMs));
    const sequential = median(results.map((r) => r.sequentialWallMs ?? Number.NaN));
    sink({
      suite: 'pipeline',
      name: file.replace(/^examples\/|\.json$/g, ''),
      backend: first.backend,
      adapter: first.adapter,
      devices: first.strategy.hardware.device_count,
      microbatches: first.strategy.batch.microbatches,
      runs,
      median_ms: wall,
      sequential_ms: sequential,
      speedup: sequential / wall,
      predicted_ms: median(results.map((r) => r.pipelined.predictedMs)),
      prediction_error_pct: median(results.map((r) => r.pipelined.predictionErrorPercent)),
      utilization: median(results.map((r) => r.pipelined.meanUtilization)),
      samples_per_s: median(results.map((r) => r.pipelined.samplesPerSecond)),
      host_cpu_ms: median(results.map((r) => r.pipelined.hostCpuMs ?? Number.NaN)),
      max_abs_error: Math.max(...results.map((r) => r.maxAbsError)),
      checked: results.every((r) => r.maxAbsError <= r.tolerance),
    });
  }
}
