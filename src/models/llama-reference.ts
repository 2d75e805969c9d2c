import { ParallelError } from '../errors.js';
import { embeddingRef } from '../kernels/reference/reference-ops.js';
import {
  argmaxRef,
  batchedMatmulRef,
  rmsNormRef,
  ropeRef,
  sigmoid,
} from '../kernels/reference/transformer-ops.js';
import type { LlamaConfig } from './llama-config.js';

/**
 * A Llama forward pass written the plain way, straight from Hugging Face's definition, on host arrays with
 * the float64-accumulating reference ops: one sequence, no sharding, no cache, every head looped over.
 * It shares no code with the library's modules, so a wrong head split or cache index shows against it
 * (the tests and the strategy runner's logits check both compare against it).
 * A config with numExperts is Mixtral: each layer's feed-forward is the sparse MoE block (mixtralMoeRef).
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

/** Token dropping in Mixtral's layers (none without it): see {@link mixtralCapacityRef}. */
export interface MoeCapacity {
  readonly factor: number;
}

/** A Mixtral router's choice per token: `indices[t]` highest weight first, `weights[t]` summing to 1. */
export interface MixtralRouting {
  readonly indices: number[][];
  readonly weights: number[][];
}

/** One Mixtral MoE block over [T, H]. */
export interface MixtralMoeResult {
  /** [T, H]: Σ over kept slots of weight · expert(x). */
  readonly out: Float32Array;
  /** router_logits = x · gateᵀ, [T, E] (float32, as the model's dtype gives them). */
  readonly logits: Float32Array;
  readonly routing: MixtralRouting;
  /** `kept[t][j]`: whether slot j of token t was within its expert's capacity (all true without one). */
  readonly kept: boolean[][];
  /** (token, slot) assignments dropped, per expert. */
  readonly dropped: number[];
}

export interface LlamaReferenceOptions {
  /** Mixtral only: each expert takes at most its capacity of this forward's T tokens. */
  readonly capacity?: MoeCapacity;
  /** Mixtral only: called for each layer with its MoE block's input (post-attention-normed, [T, H]). */
  readonly onMoe?: (layer: number, input: Float32Array, result: MixtralMoeResult) => void;
}

/**
 * Mixtral's router, as Hugging Face's MixtralSparseMoeBlock computes it, for logits [tokens, experts]:
 * softmax over all experts in float64, the k largest probabilities (ties to the lower expert index; torch
 * leaves ties unspecified), those k renormalised to sum to 1.
 */
export function mixtralRouterRef(
  logits: Float32Array,
  tokens: number,
  experts: number,
  k: number,
): MixtralRouting {
  if (!(Number.isInteger(k) && k >= 1 && k <= experts)) {
    throw new ParallelError('INVALID_ARGUMENT', `reference: top-${k} of ${experts} experts`);
  }
  if (logits.length !== tokens * experts) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `reference: ${logits.length} router logits, expected ${tokens} x ${experts}`,
    );
  }
  const indices: number[][] = [];
  const weights: number[][] = [];
  for (let t = 0; t < tokens; t++) {
    const row = Array.from(logits.subarray(t * experts, (t + 1) * experts));
    const max = Math.max(...row);
    const exps = row.map((l) => Math.exp(l - max));
    const total = exps.reduce((a, b) => a + b, 0);
    const probs = exps.map((e) => e / total);
    const order = probs.map((_, e) => e).sort((a, b) => probs[b]! - probs[a]! || a - b);
    const chosen = order.slice(0, k);
    const sum = chosen.reduce((acc, e) => acc + probs[e]!, 0);
    indices.push(chosen);
    weights.push(chosen.map((e) => probs[e]! / sum));
  }
  return { indices, weights };
}

/**
 * An expert's capacity for T tokens: C = ceil(factor · T · k / E) (token, slot) assignments, computed as
 * `Math.ceil((factor * tokens * k) / experts)`.
 */
export function mixtralCapacityRef(factor: number, tokens: number, experts: number, k: number): number {
  if (!(Number.isFinite(factor) && factor > 0))
    throw new ParallelError('INVALID_ARGUMENT', `reference: capacity factor ${factor}`);
  return Math.ceil((factor * tokens * k) / experts);
}

function moeShape(config: LlamaConfig): { E: number; k: number } {
  const E = config.numExperts;
  const k = config.expertsPerToken;
  if (E === undefined || k === undefined)
    throw new ParallelError('INVALID_ARGUMENT', 'reference: not a Mixtral config');
  return { E, k };
}

/**
 * Layer `layer`'s sparse MoE block on its input x [T, H] (the post-attention-normed hidden states). With a
 * capacity, assignments are taken in token order (token 0 first; within a token, slot order, highest
 * weight first) and each expert accepts the first C; a dropped assignment's term is left out, and the
 * token's other weights are not renormalised again.
 */
export function mixtralMoeRef(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  layer: number,
  x: Float32Array,
  options: { readonly capacity?: MoeCapacity } = {},
): MixtralMoeResult {
  const { hiddenSize: H, intermediateSize: I } = config;
  const { E, k } = moeShape(config);
  const T = x.length / H;
  if (!Number.isInteger(T))
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `reference: MoE input of ${x.length} values is not [T, ${H}]`,
    );
  const w = (name: string) => {
    const t = weights[name];
    if (!t) throw new ParallelError('INVALID_ARGUMENT', `reference: no weight ${name}`);
    return t;
  };
  const p = `model.layers.${layer}.block_sparse_moe`;
  const logits = linear(x, w(`${p}.gate.weight`), T, H, E);
  const routing = mixtralRouterRef(logits, T, E, k);
  const capacity = options.capacity ? mixtralCapacityRef(options.capacity.factor, T, E, k) : Infinity;
  const load = new Array<number>(E).fill(0);
  const dropped = new Array<number>(E).fill(0);
  const kept = routing.indices.map((chosen) =>
    chosen.map((e) => {
      if (load[e]! < capacity) {
        load[e]!++;
        return true;
      }
      dropped[e]!++;
      return false;
    }),
  );
  const acc = new Float64Array(T * H);
  for (let e = 0; e < E; e++) {
    const rows: { t: number; weight: number }[] = [];
    for (let t = 0; t < T; t++) {
      const j = routing.indices[t]!.indexOf(e);
      if (j >= 0 && kept[t]![j]) rows.push({ t, weight: routing.weights[t]![j]! });
    }
    if (rows.length === 0) continue;
    const xs = new Float32Array(rows.length * H);
    rows.forEach(({ t }, r) => {
      xs.set(x.subarray(t * H, (t + 1) * H), r * H);
    });
    const ex = `${p}.experts.${e}`;
    const gate = linear(xs, w(`${ex}.w1.weight`), rows.length, H, I);
    const up = linear(xs, w(`${ex}.w3.weight`), rows.length, H, I);
    const act = gate.map((g, i) => g * sigmoid(g) * up[i]!);
    const down = linear(act, w(`${ex}.w2.weight`), rows.length, I, H);
    rows.forEach(({ t, weight }, r) => {
      for (let c = 0; c < H; c++) acc[t * H + c]! += weight * down[r * H + c]!;
    });
  }
  return { out: Float32Array.from(acc), logits, routing, kept, dropped };
}

/** Dropped (token, slot) assignments per expert of layer `layer`'s MoE block on its input x [T, H]. */
export function mixtralDroppedRef(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  layer: number,
  x: Float32Array,
  capacity: MoeCapacity,
): number[] {
  return mixtralMoeRef(config, weights, layer, x, { capacity }).dropped;
}

export function llamaReferenceLogits(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  ids: readonly number[],
  options: LlamaReferenceOptions = {},
): Float32Array {
  const { hiddenSize: H, numHeads, numKvHeads, headDim: d, vocabSize: V, intermediateSize: I } = config;
  const T = ids.length;
  const w = (name: string) => {
    const t = weights[name];
    if (!t) throw new ParallelError('INVALID_ARGUMENT', `reference: no weight ${name}`);
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
    let down: Float32Array;
    if (config.numExperts === undefined) {
      const gate = linear(n2, w(`${p}.mlp.gate_proj.weight`), T, H, I);
      const up = linear(n2, w(`${p}.mlp.up_proj.weight`), T, H, I);
      const act = gate.map((g, i) => g * sigmoid(g) * up[i]!);
      down = linear(act, w(`${p}.mlp.down_proj.weight`), T, I, H);
    } else {
      const moe = mixtralMoeRef(config, weights, l, n2, { capacity: options.capacity });
      options.onMoe?.(l, n2, moe);
      down = moe.out;
    }
    x = x.map((value, i) => value + down[i]!);
  }
  const normed = rmsNormRef(x, T, H, w('model.norm.weight'), config.rmsNormEps);
  const head = config.tieWordEmbeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
  return linear(normed, head, T, H, V);
}

/**
 * Greedy continuation by re-running the whole prefix every step: what a KV cache must reproduce. A capacity
 * in `options` applies to each step's whole prefix (what a prefill of it drops), not to one decode token.
 */
export function llamaReferenceGreedy(
  config: LlamaConfig,
  weights: Readonly<Record<string, Float32Array>>,
  prompt: readonly number[],
  newTokens: number,
  options: LlamaReferenceOptions = {},
): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < newTokens; i++) {
    const logits = llamaReferenceLogits(config, weights, seq, options);
    const last = logits.subarray((seq.length - 1) * config.vocabSize);
    const id = argmaxRef(last, 1, config.vocabSize).indices[0]!;
    out.push(id);
    seq.push(id);
  }
  return out;
}
