import { predictWallMs } from '../src/strategy/cost-model.js';
import { fitCostModel, probeMicrobatches } from '../src/strategy/improve.js';
import { runStrategy } from '../src/strategy/run-strategy.js';
import type { BenchSink } from './record.js';
import { median } from './record.js';

/** llama-small on 4 devices: two tensor-parallel pipeline stages, the base the variants are predicted from. */
function strategy(microbatches: number, layers: readonly [number, number]) {
  return {
    name: `llama-small TP2xPP2 m${microbatches} layers ${layers[0]}+${layers[1]}`,
    hardware: { device_count: 4, memory_per_device_bytes: 2 ** 27 },
    model: { preset: 'llama-small' },
    batch: { batch_size: 8, seq_len: 32, microbatches },
    stages: [
      { name: 'front', devices: [0, 1], layers: [0, layers[0] - 1] },
      { name: 'back', devices: [2, 3], layers: [layers[0], 3] },
    ],
  };
}

/**
 * The cost model against measurement: one base strategy run (3 repeats) and its probe at another
 * microbatch count give the model (see `fitCostModel`); then every variant of microbatch count (1, 2,
 * 4, 8) and layer split (1+3, 2+2, 3+1) is predicted from it and measured (median of 2 runs, outputs
 * unchecked: the strategy tests check them). Reports each variant's error and their median absolute.
 */
export async function runVariantsBench(sink: BenchSink, options: { quick?: boolean } = {}): Promise<void> {
  const opts = { backend: 'webgpu' as const, sequentialBaseline: false, checkOutputs: false };
  const baseFile = strategy(4, [2, 2]);
  const base = await runStrategy(baseFile, { ...opts, repeats: 3 });
  const probeM = probeMicrobatches(8, 4)!;
  const probe = await runStrategy(strategy(probeM, [2, 2]), { ...opts, repeats: 1 });
  const { model } = fitCostModel(base, baseFile, { probe });
  const errors: number[] = [];
  const counts = options.quick ? [1, 8] : [1, 2, 4, 8];
  const splits: [number, number][] = options.quick
    ? [
        [1, 3],
        [3, 1],
      ]
    : [
        [1, 3],
        [2, 2],
        [3, 1],
      ];
  for (const m of counts) {
    for (const layers of splits) {
      const run = await runStrategy(strategy(m, layers), { ...opts, repeats: 2 });
      const measured = median(run.repeatsMeasured.map((r) => r.wallMs));
      const predicted = predictWallMs(model, { microbatches: m, layers });
      const error = ((predicted - measured) / measured) * 100;
      errors.push(Math.abs(error));
      sink({
        suite: 'variants',
        name: `m${m}/layers${layers.join('+')}`,
        backend: run.backend,
        adapter: run.adapter,
        microbatches: m,
        layers: layers.join('+'),
        median_ms: measured,
        predicted_ms: predicted,
        error_pct: error,
        spread_pct:
          (Math.max(...run.repeatsMeasured.map((r) => r.wallMs)) /
            Math.min(...run.repeatsMeasured.map((r) => r.wallMs)) -
            1) *
          100,
      });
    }
  }
  sink({
    suite: 'variants',
    name: 'median-abs-error',
    backend: base.backend,
    adapter: base.adapter,
    variants: errors.length,
    model: model.wallLine
      ? 'wall line in the microbatch count (devices share cores)'
      : 'fill-drain over element costs',
    median_abs_error_pct: median(errors),
    base_ms: base.pipelined.wallMs,
    probe_microbatches: probeM,
  });
}
