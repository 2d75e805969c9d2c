import { embeddingRef } from '../../src/kernels/reference/reference-ops.js';
import {
  argmaxRef,
  batchedMatmulRef,
  rmsNormRef,
  ropeRef,
  sigmoid,
} from '../../src/kernels/reference/transformer-ops.js';
import type { LlamaConfig } from '../../src/models/llama-config.js';

/**
 * A Llama forward pass written the plain way, straight from Hugging Face's definition, on host arrays with
 * the float64-accumulating reference ops: one sequence, no sharding, no cache, every head looped over.
 * It shares no code with the library's modules, so a wrong head split or cache index shows against it.
 */

/** x [rows, in] · Wᵀ for a Hugging Face weight W [out, in]. */
function linear(x: Float32Array, w: Float32Array, rows: number, inF: number, outF: number): Float32Array {
  return batchedMatmulRef(x, w, {
    batch: 1,
    m: rows,
    n: outF,
    k: inF,
    bStride: outF,
    transposeB: true,
    scale: 1,
  });
}

export function llamaReferenceLogits(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  ids: readonly number[],
): Float32Array {
  const { hiddenSize: H, numHeads, numKvHeads, headDim: d, vocabSize: V, intermediateSize: I } = config;
  const T = ids.length;
  const w = (name: string) => {
    const t = weights[name];
    if (!t) throw new Error(`reference: no weight ${name}`);
    return t;
  };
  const positions = Uint32Array.from(ids, (_, i) => i);
  let x = embeddingRef(w('model.embed_tokens.weight'), H, V, Uint32Array.from(ids));
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const n1 = rmsNormRef(x, T, H, w(`${p}.input_layernorm.weight`), config.rmsNormEps);
    const rope = (t: Float32Array, heads: number) =>
      ropeRef(t, positions, { rows: T, cols: heads * d, headDim: d }, config.ropeTheta);
    const q = rope(linear(n1, w(`${p}.self_attn.q_proj.weight`), T, H, numHeads * d), numHeads);
    const k = rope(linear(n1, w(`${p}.self_attn.k_proj.weight`), T, H, numKvHeads * d), numKvHeads);
    const v = linear(n1, w(`${p}.self_attn.v_proj.weight`), T, H, numKvHeads * d);
    const attended = new Float32Array(T * numHeads * d);
    for (let h = 0; h < numHeads; h++) {
      const kv = Math.floor(h / (numHeads / numKvHeads));
      for (let i = 0; i < T; i++) {
        const scores = new Float64Array(i + 1);
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += q[(i * numHeads + h) * d + c]! * k[(j * numKvHeads + kv) * d + c]!;
          scores[j] = s / Math.sqrt(d);
        }
        const max = Math.max(...scores);
        const exp = scores.map((s) => Math.exp(s - max));
        const total = exp.reduce((a, b) => a + b, 0);
        for (let c = 0; c < d; c++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += (exp[j]! / total) * v[(j * numKvHeads + kv) * d + c]!;
          attended[(i * numHeads + h) * d + c] = s;
        }
      }
    }
    const o = linear(attended, w(`${p}.self_attn.o_proj.weight`), T, numHeads * d, H);
    x = x.map((value, i) => value + o[i]!);
    const n2 = rmsNormRef(x, T, H, w(`${p}.post_attention_layernorm.weight`), config.rmsNormEps);
    const gate = linear(n2, w(`${p}.mlp.gate_proj.weight`), T, H, I);
    const up = linear(n2, w(`${p}.mlp.up_proj.weight`), T, H, I);
    const act = gate.map((g, i) => g * sigmoid(g) * up[i]!);
    const down = linear(act, w(`${p}.mlp.down_proj.weight`), T, I, H);
    x = x.map((value, i) => value + down[i]!);
  }
  const normed = rmsNormRef(x, T, H, w('model.norm.weight'), config.rmsNormEps);
  const head = config.tieWordEmbeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
  return linear(normed, head, T, H, V);
}

/** Greedy continuation by re-running the whole prefix every step: what a KV cache must reproduce. */
export function llamaReferenceGreedy(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  prompt: readonly number[],
  newTokens: number,
): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < newTokens; i++) {
    const logits = llamaReferenceLogits(config, weights, seq);
    const last = logits.subarray((seq.length - 1) * config.vocabSize);
    const id = argmaxRef(last, 1, config.vocabSize).indices[0]!;
    out.push(id);
    seq.push(id);
  }
  return out;
}
