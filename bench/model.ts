import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../src/models/generate.js';
import { LlamaModel } from '../src/models/llama/llama-model.js';
import type { LlamaConfig } from '../src/models/llama-config.js';
import {
  llamaParameterShapes,
  preset,
  randomLlamaWeights,
  writeRandomCheckpoint,
} from '../src/models/presets.js';
import { MemoryWeights } from '../src/parallel/weight-reader.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { openTfjs, TfjsLlama } from './peers/tfjs-llama.js';
import { type BenchRecord, type BenchSink, median } from './record.js';

const PROMPT_TOKENS = 64;
const NEW_TOKENS = 24;

const PLANS: readonly PlanEntry[] = [
  { name: 'TP=1', devices: 1, plan: { tp: 1, pp: 1 } },
  { name: 'TP=2', devices: 2, plan: { tp: 2, pp: 1 } },
  { name: 'TP=3', devices: 3, plan: { tp: 3, pp: 1 } },
  { name: 'PP=2', devices: 2, plan: { tp: 1, pp: 2 } },
  { name: 'PP=3', devices: 3, plan: { tp: 1, pp: 3 } },
];

function promptOf(config: LlamaConfig): number[] {
  return Array.from({ length: PROMPT_TOKENS }, (_, i) => (i * 7919 + 13) % config.vocabSize);
}

/** Largest |a - b| relative to b's largest magnitude. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / scale;
}

interface PlanEntry {
  readonly name: string;
  readonly devices: number;
  readonly plan: { tp: number; pp: number; ep?: number };
}

/**
 * Prefill and decode tokens/s of Llama presets on 1-3 devices (TP and PP), and as peers the same model and
 * weights in TensorFlow.js on its WebGPU backend (the same Dawn adapter) and its CPU backend. Every peer's
 * logits are checked against ours before it is timed. Each figure is the median of `runs` after a warm-up.
 */
export async function runModelBench(
  sink: BenchSink,
  options: { quick?: boolean; runs?: number } = {},
): Promise<void> {
  const runs = options.quick ? 2 : (options.runs ?? 3);
  const presets = options.quick ? ['llama-small'] : ['llama-small', 'llama-1024'];
  const plans = options.quick ? PLANS.filter((p) => p.name !== 'PP=2') : PLANS;
  for (const name of presets) {
    await benchPreset(sink, name, plans, runs);
    sink({ suite: 'model', name: `${name}/load-rss`, ...loadRss(name) });
  }
}

/** One preset under each plan, then the tfjs peers on the same weights. */
export async function benchPreset(
  sink: BenchSink,
  name: string,
  plans: readonly PlanEntry[],
  runs: number,
  suite: BenchRecord['suite'] = 'model',
): Promise<void> {
  const config = preset(name);
  const tensors = randomLlamaWeights(config, 1);
  const shapes = Object.fromEntries(llamaParameterShapes(config).map((p) => [p.name, p.shape]));
  const weights = new MemoryWeights(tensors, shapes);
  const prompt = promptOf(config);
  let ourLogits: Float32Array | null = null;
  let ourIds: number[] | null = null;
  for (const entry of plans) {
    const group = await DeviceGroup.open({ count: entry.devices, backend: 'webgpu' });
    try {
      using model = await LlamaModel.load(group, { config, weights }, { plan: entry.plan });
      const [logits] = await model.forward([prompt]);
      ourLogits ??= logits!;
      const error = relativeError(logits!, ourLogits);
      const results = [];
      for (let i = 0; i <= runs; i++) {
        model.expertLoad?.reset();
        results.push(await generate(model, [prompt], { maxNewTokens: NEW_TOKENS }));
      }
      results.shift();
      ourIds ??= results[0]!.tokens[0]!;
      const load = model.expertLoad?.summary();
      sink({
        suite,
        name: `${name}/${entry.name}`,
        backend: 'webgpu',
        adapter: group.devices[0]!.adapter.name,
        devices: entry.devices,
        prompt_tokens: PROMPT_TOKENS,
        new_tokens: NEW_TOKENS,
        prefill_tok_s: median(results.map((r) => r.prefill.tokensPerSecond)),
        decode_tok_s: median(results.map((r) => r.decode.tokensPerSecond)),
        logits_rel_err_vs_first: error,
        same_ids_as_first: results.every((r) => r.tokens[0]!.join() === ourIds!.join()),
        peak_mib: Math.max(...group.devices.map((d) => d.ledger.peakBytes)) / 2 ** 20,
        ...(load
          ? {
              all_to_all_mib: load.allToAllBytes / 2 ** 20,
              all_to_all_ms: load.allToAllMs,
              busiest_group_rows: Math.max(...load.stages.map((s) => s.busiestGroup.rows)),
            }
          : {}),
      });
    } finally {
      group.destroy();
    }
  }
  for (const backend of ['webgpu', 'cpu'] as const) {
    const tf = await openTfjs(backend);
    const peer = new TfjsLlama(tf, config, tensors);
    try {
      const error = relativeError(await peer.forward(prompt), ourLogits!);
      const prefill: number[] = [];
      const decode: number[] = [];
      for (let i = 0; i <= runs; i++) {
        peer.reset();
        const t0 = performance.now();
        let id = await peer.prefill(prompt);
        const t1 = performance.now();
        for (let s = 1; s < NEW_TOKENS; s++) id = await peer.decodeStep(id);
        const t2 = performance.now();
        if (i === 0) continue;
        prefill.push((PROMPT_TOKENS * 1000) / (t1 - t0));
        decode.push(((NEW_TOKENS - 1) * 1000) / (t2 - t1));
      }
      sink({
        suite,
        name: `${name}/tfjs-${backend}`,
        backend: `tfjs-${backend}`,
        adapter: backend === 'webgpu' ? 'dawn (same adapter)' : 'host',
        devices: 1,
        prompt_tokens: PROMPT_TOKENS,
        new_tokens: NEW_TOKENS,
        prefill_tok_s: median(prefill),
        decode_tok_s: median(decode),
        logits_rel_err_vs_first: error,
        peer: `TensorFlow.js 4.22 ${backend} backend, the same weights`,
      });
    } finally {
      peer.dispose();
      tf.engine().reset();
    }
  }
}

/**
 * Loads a checkpoint of the preset sharded 3 ways in a fresh process and reports its peak RSS growth.
 * On lavapipe a device's buffers are host memory, so the growth is the parameters themselves plus what
 * the host held while reading: the latter is the figure to compare with the largest shard.
 */
function loadRss(name: string): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'wgp-bench-'));
  try {
    writeRandomCheckpoint(join(dir, 'ckpt'), preset(name), { seed: 1, dtype: 'F32' });
    const script = fileURLToPath(new URL('./load-rss.js', import.meta.url));
    const out = execFileSync(process.execPath, [script, join(dir, 'ckpt'), '3'], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
