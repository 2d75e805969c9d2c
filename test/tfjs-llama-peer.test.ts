import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeTfjs,
  openTfjs,
  type Tf,
  type TfjsBackendName,
  TfjsLlama,
  type TfjsLlamaConfig,
} from '../bench/peers/tfjs-llama.js';
import { preset, randomLlamaWeights } from '../src/models/presets.js';
import { makeRandom } from '../src/random.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';
import { llamaReferenceGreedy, llamaReferenceLogits } from './support/llama-reference.js';

const config: TfjsLlamaConfig = preset('llama-tiny');

function makeWeights(c: TfjsLlamaConfig, seed: number): Record<string, Float32Array> {
  const random = makeRandom(seed);
  const tensor = (n: number) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * 0.3);
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + (random() * 2 - 1) * 0.3);
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: hd } = c;
  const w: Record<string, Float32Array> = {
    'model.embed_tokens.weight': tensor(V * H),
    'model.norm.weight': norm(H),
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    w[`${p}.input_layernorm.weight`] = norm(H);
    w[`${p}.self_attn.q_proj.weight`] = tensor(numHeads * hd * H);
    w[`${p}.self_attn.k_proj.weight`] = tensor(numKvHeads * hd * H);
    w[`${p}.self_attn.v_proj.weight`] = tensor(numKvHeads * hd * H);
    w[`${p}.self_attn.o_proj.weight`] = tensor(H * numHeads * hd);
    w[`${p}.post_attention_layernorm.weight`] = norm(H);
    w[`${p}.mlp.gate_proj.weight`] = tensor(I * H);
    w[`${p}.mlp.up_proj.weight`] = tensor(I * H);
    w[`${p}.mlp.down_proj.weight`] = tensor(H * I);
  }
  if (!c.tieWordEmbeddings) w['lm_head.weight'] = tensor(V * H);
  return w;
}

/** Plain float64 loops, straight from Hugging Face's Llama: logits [T, V] of one causal sequence. */
function referenceLogits(c: TfjsLlamaConfig, w: Record<string, Float32Array>, ids: number[]): Float64Array {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: hd } = c;
  const T = ids.length;
  const W = (name: string) => w[name]!;
  /** y[t][o] = sum_i x[t][i] * m[o][i] for m [out, in]. */
  const linear = (x: Float64Array, m: Float32Array, inF: number, outF: number): Float64Array => {
    const y = new Float64Array(T * outF);
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < outF; o++) {
        let sum = 0;
        for (let i = 0; i < inF; i++) sum += x[t * inF + i]! * m[o * inF + i]!;
        y[t * outF + o] = sum;
      }
    }
    return y;
  };
  const rmsNorm = (x: Float64Array, g: Float32Array): Float64Array => {
    const y = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      let ss = 0;
      for (let i = 0; i < H; i++) ss += x[t * H + i]! ** 2;
      const r = 1 / Math.sqrt(ss / H + c.rmsNormEps);
      for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i]! * r * g[i]!;
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number): void => {
    const half = hd / 2;
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * hd;
        for (let i = 0; i < half; i++) {
          const angle = t * c.ropeTheta ** ((-2 * i) / hd);
          const a = x[base + i]!;
          const b = x[base + half + i]!;
          x[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
          x[base + half + i] = b * Math.cos(angle) + a * Math.sin(angle);
        }
      }
    }
  };

  const embed = W('model.embed_tokens.weight');
  let x = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) x[t * H + i] = embed[ids[t]! * H + i]!;
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNorm(x, W(`${p}.input_layernorm.weight`));
    const q = linear(h, W(`${p}.self_attn.q_proj.weight`), H, numHeads * hd);
    const k = linear(h, W(`${p}.self_attn.k_proj.weight`), H, numKvHeads * hd);
    const v = linear(h, W(`${p}.self_attn.v_proj.weight`), H, numKvHeads * hd);
    rope(q, numHeads);
    rope(k, numKvHeads);
    const attn = new Float64Array(T * numHeads * hd);
    const group = numHeads / numKvHeads;
    for (let head = 0; head < numHeads; head++) {
      const kvHead = Math.floor(head / group);
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) {
            dot += q[(t * numHeads + head) * hd + d]! * k[(s * numKvHeads + kvHead) * hd + d]!;
          }
          scores.push(dot / Math.sqrt(hd));
        }
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let d = 0; d < hd; d++) {
          let sum = 0;
          for (let s = 0; s <= t; s++) sum += (exps[s]! / total) * v[(s * numKvHeads + kvHead) * hd + d]!;
          attn[(t * numHeads + head) * hd + d] = sum;
        }
      }
    }
    const o = linear(attn, W(`${p}.self_attn.o_proj.weight`), numHeads * hd, H);
    x = x.map((value, i) => value + o[i]!);
    const h2 = rmsNorm(x, W(`${p}.post_attention_layernorm.weight`));
    const gate = linear(h2, W(`${p}.mlp.gate_proj.weight`), H, I);
    const up = linear(h2, W(`${p}.mlp.up_proj.weight`), H, I);
    const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
    const down = linear(act, W(`${p}.mlp.down_proj.weight`), I, H);
    x = x.map((value, i) => value + down[i]!);
  }
  const head = W(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return linear(rmsNorm(x, W('model.norm.weight')), head, H, V);
}

function argmaxRow(logits: ArrayLike<number>, row: number, width: number): number {
  let best = 0;
  for (let i = 1; i < width; i++) {
    if (logits[row * width + i]! > logits[row * width + best]!) best = i;
  }
  return best;
}

const weights = makeWeights(config, 1234);
const prompt = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % config.vocabSize);
const expected = referenceLogits(config, weights, prompt);

/** Mixtral: 'mixtral-tiny' with random weights at trained scales, against the shared float64 reference. */
const moeConfig = preset('mixtral-tiny');
const moeWeights = randomLlamaWeights(moeConfig, 1234);
/** Per token and layer, the gap between the k-th and (k+1)-th router probability (float64). */
const routingMargins: number[] = [];
const moeExpected = llamaReferenceLogits(moeConfig, moeWeights, prompt, {
  onMoe: (_, __, moe) => {
    const E = moeConfig.numExperts!;
    const k = moeConfig.expertsPerToken!;
    for (let t = 0; t < prompt.length; t++) {
      const row = Array.from(moe.logits.subarray(t * E, (t + 1) * E));
      const max = Math.max(...row);
      const exps = row.map((l) => Math.exp(l - max));
      const total = exps.reduce((a, b) => a + b, 0);
      const probs = exps.map((e) => e / total).sort((a, b) => b - a);
      routingMargins.push(probs[k - 1]! - probs[k]!);
    }
  },
});
const MOE_NEW_TOKENS = 6;
const moeGreedy = llamaReferenceGreedy(moeConfig, moeWeights, prompt, MOE_NEW_TOKENS);

// Under the gpu.js test pass webGpuAvailable answers true without asking Dawn; tfjs-webgpu needs Dawn.
const runWebGpu = TEST_BACKEND === 'webgpu' && (await webGpuAvailable());

/**
 * Tolerance relative to the largest |logit|: 1e-4 on both backends. Both compute in f32 and no sum here is
 * longer than 80; measured, cpu is off by 3e-7 and webgpu (lavapipe) by 6e-7, so 1e-4 leaves a wide margin.
 */
const tolerance: Record<TfjsBackendName, number> = { cpu: 1e-4, webgpu: 1e-4 };

for (const backend of ['cpu', 'webgpu'] as const) {
  describe.skipIf(backend === 'webgpu' && !runWebGpu)(`TfjsLlama on tfjs-${backend}`, () => {
    let tf: Tf;
    let model: TfjsLlama;

    beforeAll(async () => {
      tf = await openTfjs(backend);
      model = new TfjsLlama(tf, config, weights);
    });

    afterAll(() => {
      model?.dispose();
      if (tf) {
        expect(tf.memory().numTensors).toBe(0);
        closeTfjs(tf);
      }
    });

    it('matches a float64 reference on the logits of a causal sequence', async () => {
      expect(tf.getBackend()).toBe(backend);
      const logits = await model.forward(prompt);
      expect(logits.length).toBe(prompt.length * config.vocabSize);
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(logits[i]! - expected[i]!));
      expect(worst / scale).toBeLessThan(tolerance[backend]);
    });

    it('decodes with its KV cache the ids that re-running forward picks, at a constant tensor count', async () => {
      const sequence = [...prompt];
      let next = await model.prefill(sequence);
      const counts: number[] = [];
      for (let step = 0; step < 5; step++) {
        const logits = await model.forward(sequence);
        expect(next, `step ${step}`).toBe(argmaxRow(logits, sequence.length - 1, config.vocabSize));
        sequence.push(next);
        next = await model.decodeStep(next);
        counts.push(tf.memory().numTensors);
      }
      const last = await model.forward(sequence);
      expect(next, 'step 5').toBe(argmaxRow(last, sequence.length - 1, config.vocabSize));
      expect(new Set(counts).size).toBe(1);
      // A fresh prefill starts over.
      expect(await model.prefill(prompt)).toBe(argmaxRow(expected, prompt.length - 1, config.vocabSize));
      model.reset();
    });

    it('runs Mixtral to the float64 reference on the logits of a causal sequence', async () => {
      // The comparison means something only if float32 routing picks the experts float64 does: no
      // near-tie at the k-th place.
      expect(routingMargins).toHaveLength(prompt.length * moeConfig.numLayers);
      expect(Math.min(...routingMargins)).toBeGreaterThan(1e-4);
      const moe = new TfjsLlama(tf, moeConfig, moeWeights);
      try {
        const logits = await moe.forward(prompt);
        expect(logits.length).toBe(prompt.length * moeConfig.vocabSize);
        const scale = moeExpected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        let worst = 0;
        for (let i = 0; i < moeExpected.length; i++) {
          worst = Math.max(worst, Math.abs(logits[i]! - moeExpected[i]!));
        }
        expect(worst / scale).toBeLessThan(tolerance[backend]);
      } finally {
        moe.dispose();
      }
    });

    it('decodes Mixtral with its KV cache to the greedy ids of the reference, at a constant tensor count', async () => {
      const moe = new TfjsLlama(tf, moeConfig, moeWeights);
      try {
        const ids = [await moe.prefill(prompt)];
        const counts: number[] = [];
        while (ids.length < MOE_NEW_TOKENS) {
          ids.push(await moe.decodeStep(ids.at(-1)!));
          counts.push(tf.memory().numTensors);
        }
        expect(ids).toEqual(moeGreedy);
        expect(new Set(counts).size).toBe(1);
      } finally {
        moe.dispose();
      }
    });

    it('reads the output projection from the embedding when the two are tied', async () => {
      const tiedConfig = { ...config, numLayers: 1, tieWordEmbeddings: true };
      const tiedWeights = makeWeights(tiedConfig, 99);
      expect(tiedWeights['lm_head.weight']).toBeUndefined();
      const tied = new TfjsLlama(tf, tiedConfig, tiedWeights);
      try {
        const ids = prompt.slice(0, 5);
        const want = referenceLogits(tiedConfig, tiedWeights, ids);
        const got = await tied.forward(ids);
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        expect(worst / scale).toBeLessThan(tolerance[backend]);
      } finally {
        tied.dispose();
      }
    });
  });
}
