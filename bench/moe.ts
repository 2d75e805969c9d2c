import { CollectiveContext } from '../src/collectives/context.js';
import { shardFromHost } from '../src/collectives/host-io.js';
import { Replicate } from '../src/collectives/layout.js';
import { llamaParameterShapes, preset, randomLlamaWeights } from '../src/models/presets.js';
import { ExpertLoad } from '../src/parallel/expert-load.js';
import { MixtureOfExperts } from '../src/parallel/moe.js';
import { MemoryWeights } from '../src/parallel/weight-reader.js';
import { makeRandom } from '../src/random.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { benchPreset } from './model.js';
import { type BenchSink, median } from './record.js';

const LAYER_TOKENS = 64;

const EP_PLANS = [
  { name: 'EP=1', devices: 1, plan: { tp: 1, pp: 1, ep: 1 } },
  { name: 'EP=2', devices: 2, plan: { tp: 2, pp: 1, ep: 2 } },
  { name: 'EP=3', devices: 3, plan: { tp: 3, pp: 1, ep: 3 } },
];

/**
 * Mixtral: one MoE layer's tokens/s at EP 1/2/3 (64 tokens, output checked against EP=1 first), then the
 * mixtral-small preset's prefill and decode beside the same model in TensorFlow.js (see bench/model.ts).
 */
export async function runMoeBench(sink: BenchSink, options: { quick?: boolean; runs?: number } = {}) {
  const runs = options.quick ? 3 : (options.runs ?? 5);
  const config = preset('mixtral-small');
  const tensors = randomLlamaWeights(config, 1);
  const shapes = Object.fromEntries(llamaParameterShapes(config).map((p) => [p.name, p.shape]));
  const weights = new MemoryWeights(tensors, shapes);
  const random = makeRandom(7);
  const x = Float32Array.from({ length: LAYER_TOKENS * config.hiddenSize }, () => random() * 2 - 1);
  const shape = { ...config, numExperts: config.numExperts!, expertsPerToken: config.expertsPerToken! };
  let first: Float32Array | null = null;
  for (const entry of EP_PLANS) {
    const group = await DeviceGroup.open({ count: entry.devices, backend: 'webgpu' });
    const ctx = new CollectiveContext();
    const load = new ExpertLoad();
    const moe = new MixtureOfExperts(ctx, group, weights, 'model.layers.0', shape, {
      ep: entry.plan.ep,
      load,
    });
    const input = shardFromHost(group, x, [LAYER_TOKENS, config.hiddenSize], Replicate(), 'x');
    try {
      const check = await moe.forward(input);
      const out = (await check.shards[0]!.read()) as Float32Array;
      check.free();
      first ??= out;
      let worst = 0;
      for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i]! - first[i]!));
      const times: number[] = [];
      for (let i = 0; i <= runs; i++) {
        load.reset();
        const t0 = performance.now();
        const y = await moe.forward(input);
        await Promise.all(group.devices.map((d) => d.sync()));
        times.push(performance.now() - t0);
        y.free();
      }
      times.shift();
      const ms = median(times);
      const stage = load.summary().stages[0]!;
      sink({
        suite: 'moe',
        name: `moe-layer/${entry.name}`,
        backend: 'webgpu',
        adapter: group.devices[0]!.adapter.name,
        devices: entry.devices,
        tokens: LAYER_TOKENS,
        median_ms: ms,
        tok_s: (LAYER_TOKENS * 1000) / ms,
        max_abs_diff_vs_ep1: worst,
        rows_per_group: stage.perGroup.join(' '),
        all_to_all_ms: load.summary().allToAllMs,
      });
    } finally {
      input.free();
      moe.free();
      ctx.destroy();
      group.destroy();
    }
  }
  await benchPreset(sink, 'mixtral-small', EP_PLANS, options.quick ? 2 : 3, 'moe');
}
