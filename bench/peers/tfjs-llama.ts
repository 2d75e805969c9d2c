import type * as TfCore from '@tensorflow/tfjs-core';
import type { LlamaConfig } from '../../src/models/llama-config.js';

/**
 * The TensorFlow.js peer of our Llama model: the same network written with tfjs-core ops, run on
 * tfjs-backend-webgpu (Dawn's node bindings, the same driver ours uses) or tfjs-backend-cpu. Weights are
 * uploaded once, pre-transposed to [in, out] (q/k/v fused into one matrix, gate/up into another), so a
 * forward pass is plain matMuls; every pass runs inside tf.tidy, and the KV cache is the only state kept
 * between calls (2 tensors a layer), so the tensor count stays constant across decode steps. A config with
 * numExperts is Mixtral: each layer's feed-forward is the sparse MoE block (see TfjsLlama.moe).
 */

export type Tf = typeof TfCore;
export type TfjsBackendName = 'webgpu' | 'cpu';

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

let webGpuBackendLoaded: Promise<void> | undefined;

/**
 * tfjs-backend-webgpu registers its backend at import time, and only where `navigator.gpu` exists; Node 20
 * has no navigator, so Dawn's is installed first (with the WebGPU constants, GPUBufferUsage...).
 */
function loadWebGpuBackend(): Promise<void> {
  webGpuBackendLoaded ??= (async () => {
    const dawn = (await import('webgpu')) as unknown as DawnModule;
    Object.assign(globalThis, dawn.globals);
    const current = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!current?.gpu) {
      Object.defineProperty(globalThis, 'navigator', {
        value: { ...(current ?? {}), gpu: dawn.create([]) },
        configurable: true,
        writable: true,
      });
    }
    await import('@tensorflow/tfjs-backend-webgpu');
  })();
  return webGpuBackendLoaded;
}

/** tfjs-core with `backend` active and initialized. */
export async function openTfjs(backend: TfjsBackendName): Promise<Tf> {
  const tf: Tf = await import('@tensorflow/tfjs-core');
  if (backend === 'webgpu') await loadWebGpuBackend();
  else await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend '${backend}' failed to initialize`);
  await tf.ready();
  return tf;
}

/**
 * Disposes every backend tfjs has initialized and destroys the WebGPU device, so nothing native holds the
 * process open; a later openTfjs initializes the backend again.
 */
export function closeTfjs(tf: Tf): void {
  const webgpu = tf.engine().registry.webgpu as { device?: GPUDevice } | undefined;
  tf.engine().reset();
  webgpu?.device?.destroy();
}

/** The peer runs the library's own config type, so the two models cannot drift apart in what they read. */
export type TfjsLlamaConfig = LlamaConfig;

interface LayerWeights {
  readonly inputNorm: TfCore.Tensor1D;
  /** [H, (heads + 2 kv) * hd]: q, k and v columns side by side. */
  readonly qkv: TfCore.Tensor2D;
  /** [heads * hd, H] */
  readonly o: TfCore.Tensor2D;
  readonly postNorm: TfCore.Tensor1D;
  /** [H, 2 I]: gate then up. Mixtral: [H, 2 E I], every expert's w1 (expert-major), then every w3. */
  readonly gateUp: TfCore.Tensor2D;
  /** [I, H]. Mixtral: [E I, H], the experts' w2ᵀ stacked along rows. */
  readonly down: TfCore.Tensor2D;
  /** Mixtral's router, [H, E]. */
  readonly router?: TfCore.Tensor2D;
}

interface LayerCache {
  /** [kv, positions, hd] */
  k: TfCore.Tensor3D;
  v: TfCore.Tensor3D;
}

/** Writes the transpose of `src` ([rows, cols]) into `dst` ([cols, rows] starting at column `colOffset`, of `dstCols`). */
function transposeInto(
  src: Float32Array,
  rows: number,
  cols: number,
  dst: Float32Array,
  dstCols: number,
  colOffset: number,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) dst[c * dstCols + colOffset + r] = src[base + c]!;
  }
}

export class TfjsLlama {
  private readonly embed: TfCore.Tensor2D;
  private readonly lmHead: TfCore.Tensor2D;
  private readonly finalNorm: TfCore.Tensor1D;
  private readonly layers: LayerWeights[] = [];
  /** [maxPositions, hd] */
  private readonly cos: TfCore.Tensor2D;
  private readonly sin: TfCore.Tensor2D;
  private cache: LayerCache[] | undefined;
  private position = 0;
  private disposed = false;

  constructor(
    private readonly tf: Tf,
    private readonly config: TfjsLlamaConfig,
    weights: Record<string, Float32Array>,
  ) {
    const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim: hd } = config;
    if (numHeads % numKvHeads !== 0) throw new Error(`numHeads ${numHeads} is not a multiple of numKvHeads`);
    if (hd % 2 !== 0) throw new Error(`headDim ${hd} must be even for RoPE`);
    const E = config.numExperts;
    const k = config.expertsPerToken;
    if ((E === undefined) !== (k === undefined))
      throw new Error('Mixtral needs numExperts and expertsPerToken');
    if (E !== undefined && k !== undefined && !(Number.isInteger(k) && k >= 1 && k <= E)) {
      throw new Error(`expertsPerToken ${k} is not in 1..numExperts ${E}`);
    }
    const get = (name: string, length: number): Float32Array => {
      const w = weights[name];
      if (!w) throw new Error(`missing weight ${name}`);
      if (w.length !== length) throw new Error(`weight ${name} has ${w.length} values, expected ${length}`);
      return w;
    };
    /** [out, in] matrices stacked along out, uploaded as one [in, sum(out)] matrix. */
    const transposed = (parts: { name: string; out: number }[], inDim: number): TfCore.Tensor2D => {
      const total = parts.reduce((sum, p) => sum + p.out, 0);
      const data = new Float32Array(inDim * total);
      let offset = 0;
      for (const p of parts) {
        transposeInto(get(p.name, p.out * inDim), p.out, inDim, data, total, offset);
        offset += p.out;
      }
      return tf.tensor2d(data, [inDim, total]);
    };

    const embedding = get('model.embed_tokens.weight', V * H);
    this.embed = tf.tensor2d(embedding, [V, H]);
    const headName = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    this.lmHead = transposed([{ name: headName, out: V }], H);
    this.finalNorm = tf.tensor1d(get('model.norm.weight', H));
    /** The experts' w2 [H, I] each, uploaded as one [E I, H]: expert e's w2ᵀ in rows e I... */
    const stackedDown = (prefix: string, experts: number): TfCore.Tensor2D => {
      const data = new Float32Array(experts * I * H);
      for (let e = 0; e < experts; e++) {
        const w2 = get(`${prefix}.experts.${e}.w2.weight`, H * I);
        transposeInto(w2, H, I, data.subarray(e * I * H), H, 0);
      }
      return tf.tensor2d(data, [experts * I, H]);
    };
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}`;
      const moe = `${p}.block_sparse_moe`;
      const expertParts = (w: string) =>
        Array.from({ length: E ?? 0 }, (_, e) => ({ name: `${moe}.experts.${e}.${w}.weight`, out: I }));
      const ffn =
        E === undefined
          ? {
              gateUp: transposed(
                [
                  { name: `${p}.mlp.gate_proj.weight`, out: I },
                  { name: `${p}.mlp.up_proj.weight`, out: I },
                ],
                H,
              ),
              down: transposed([{ name: `${p}.mlp.down_proj.weight`, out: H }], I),
            }
          : {
              router: transposed([{ name: `${moe}.gate.weight`, out: E }], H),
              gateUp: transposed([...expertParts('w1'), ...expertParts('w3')], H),
              down: stackedDown(moe, E),
            };
      this.layers.push({
        inputNorm: tf.tensor1d(get(`${p}.input_layernorm.weight`, H)),
        qkv: transposed(
          [
            { name: `${p}.self_attn.q_proj.weight`, out: numHeads * hd },
            { name: `${p}.self_attn.k_proj.weight`, out: numKvHeads * hd },
            { name: `${p}.self_attn.v_proj.weight`, out: numKvHeads * hd },
          ],
          H,
        ),
        o: transposed([{ name: `${p}.self_attn.o_proj.weight`, out: H }], numHeads * hd),
        postNorm: tf.tensor1d(get(`${p}.post_attention_layernorm.weight`, H)),
        ...ffn,
      });
    }

    // RoPE tables, computed in float64: angle = pos * theta^(-2i/d), duplicated to d.
    const half = hd / 2;
    const cos = new Float32Array(config.maxPositions * hd);
    const sin = new Float32Array(config.maxPositions * hd);
    for (let pos = 0; pos < config.maxPositions; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * config.ropeTheta ** ((-2 * i) / hd);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        cos[pos * hd + i] = c;
        cos[pos * hd + half + i] = c;
        sin[pos * hd + i] = s;
        sin[pos * hd + half + i] = s;
      }
    }
    this.cos = tf.tensor2d(cos, [config.maxPositions, hd]);
    this.sin = tf.tensor2d(sin, [config.maxPositions, hd]);
  }

  /** Logits [T, V] of one sequence (causal, from position 0, no cache; the cache is left as it was). */
  async forward(ids: number[]): Promise<Float32Array> {
    this.checkIds(ids, 0);
    const logits = this.tf.tidy(() => this.run(ids, 0, undefined, false).logits);
    try {
      return (await logits.data()) as Float32Array;
    } finally {
      logits.dispose();
    }
  }

  /** Starts a new sequence: fills the KV cache with `ids` and returns the greedy next token. */
  async prefill(ids: number[]): Promise<number> {
    this.reset();
    return this.extend(ids);
  }

  /** Appends one token to the cached sequence and returns the greedy next token. */
  async decodeStep(id: number): Promise<number> {
    if (!this.cache) throw new Error('decodeStep before prefill');
    return this.extend([id]);
  }

  /** Forgets the cached sequence. */
  reset(): void {
    if (this.cache) for (const c of this.cache) this.tf.dispose([c.k, c.v]);
    this.cache = undefined;
    this.position = 0;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.reset();
    const tensors: TfCore.Tensor[] = [this.embed, this.lmHead, this.finalNorm, this.cos, this.sin];
    for (const l of this.layers) {
      tensors.push(l.inputNorm, l.qkv, l.o, l.postNorm, l.gateUp, l.down);
      if (l.router) tensors.push(l.router);
    }
    this.tf.dispose(tensors);
    this.layers.length = 0;
  }

  private async extend(ids: number[]): Promise<number> {
    this.checkIds(ids, this.position);
    const start = this.position;
    const previous = this.cache;
    const out = this.tf.tidy(() => {
      const { logits, cache } = this.run(ids, start, previous, true);
      return { next: this.tf.argMax(logits, 1), cache: cache.flatMap((c) => [c.k, c.v]) };
    });
    if (previous) for (const c of previous) this.tf.dispose([c.k, c.v]);
    const cache: LayerCache[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      cache.push({ k: out.cache[2 * l] as TfCore.Tensor3D, v: out.cache[2 * l + 1] as TfCore.Tensor3D });
    }
    this.cache = cache;
    this.position = start + ids.length;
    try {
      const next = await out.next.data();
      return next[0]!;
    } finally {
      out.next.dispose();
    }
  }

  private checkIds(ids: number[], start: number): void {
    if (this.disposed) throw new Error('TfjsLlama used after dispose');
    if (ids.length === 0) throw new Error('no token ids');
    if (start + ids.length > this.config.maxPositions) {
      throw new Error(`sequence of ${start + ids.length} exceeds maxPositions ${this.config.maxPositions}`);
    }
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize)
        throw new Error(`bad token id ${id}`);
    }
  }

  private rmsNorm(x: TfCore.Tensor2D, weight: TfCore.Tensor1D): TfCore.Tensor2D {
    const tf = this.tf;
    const meanSquare = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, this.config.rmsNormEps))), weight);
  }

  /** x [T, heads, hd] rotated for positions start.. (cos/sin [T, 1, hd]). */
  private rope(x: TfCore.Tensor3D, cos: TfCore.Tensor3D, sin: TfCore.Tensor3D): TfCore.Tensor3D {
    const tf = this.tf;
    const [first, second] = tf.split(x, 2, 2);
    const rotated = tf.concat([tf.neg(second!), first!], 2);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  }

  /** down(silu(gate h) · up h), h [T, H]. */
  private mlp(h: TfCore.Tensor2D, layer: LayerWeights): TfCore.Tensor2D {
    const tf = this.tf;
    const [gate, up] = tf.split(tf.matMul(h, layer.gateUp), 2, 1);
    const act = tf.mul(tf.mul(gate!, tf.sigmoid(gate!)), up!);
    return tf.matMul(act, layer.down);
  }

  /**
   * Mixtral's sparse MoE block on h [T, H], as Hugging Face's MixtralSparseMoeBlock: softmax over the
   * router logits, tf.topk (ties to the lower expert on both backends), the k weights renormalised.
   *
   * Every expert then runs densely on every token, weighted by a [T, E] combine matrix that is zero for the
   * experts a token was not routed to: one matMul for all experts' w1 and w3, one for all w2 (the weighted
   * activations [T, E I] times the stacked [E I, H] sums over experts). That costs E/k times the FLOPs of
   * running only the chosen experts, but at these sizes tfjs is bound by kernel launches and syncs, not
   * FLOPs, and routing tokens per expert (tf.whereAsync / tf.booleanMaskAsync, then tf.gather) means a
   * data-dependent shape: a read back to the host per layer and step, outside tf.tidy, and 2 E small
   * matMuls instead of 2. This is the faster choice for a tfjs user at small sizes; at Mixtral's real sizes
   * the gather would win.
   */
  private moe(h: TfCore.Tensor2D, layer: LayerWeights, router: TfCore.Tensor2D): TfCore.Tensor2D {
    const tf = this.tf;
    const { intermediateSize: I } = this.config;
    const E = this.config.numExperts!;
    const k = this.config.expertsPerToken!;
    const T = h.shape[0];
    const probs = tf.softmax(tf.matMul(h, router), -1); // [T, E]
    const { values, indices } = tf.topk(probs, k); // [T, k], largest first
    const chosen = tf.div(values, tf.sum(values, -1, true));
    const combine = tf.sum(tf.mul(tf.oneHot(indices, E, 1, 0, 'float32'), tf.expandDims(chosen, 2)), 1);
    const [gate, up] = tf.split(tf.matMul(h, layer.gateUp), 2, 1); // [T, E I] each
    const act = tf.mul(tf.mul(gate!, tf.sigmoid(gate!)), up!);
    const weighted = tf.mul(tf.reshape(act, [T, E, I]), tf.reshape(combine, [T, E, 1]));
    return tf.matMul(tf.reshape(weighted, [T, E * I]), layer.down);
  }

  /**
   * The network over `ids` at positions start..; with `lastOnly` only the last row's logits. Call inside
   * tf.tidy. Returns the cache extended by these tokens (the previous one is left alone).
   */
  private run(
    ids: number[],
    start: number,
    previous: LayerCache[] | undefined,
    lastOnly: boolean,
  ): { logits: TfCore.Tensor2D; cache: LayerCache[] } {
    const tf = this.tf;
    const { numHeads, numKvHeads: kv, headDim: hd, hiddenSize: H } = this.config;
    const T = ids.length;
    const S = start + T;
    const group = numHeads / kv;
    const cos = tf.reshape(tf.slice(this.cos, [start, 0], [T, hd]), [T, 1, hd]) as TfCore.Tensor3D;
    const sin = tf.reshape(tf.slice(this.sin, [start, 0], [T, hd]), [T, 1, hd]) as TfCore.Tensor3D;
    // Additive causal mask [T, S]: row t sees positions <= start + t. A single new token sees everything.
    let mask: TfCore.Tensor | undefined;
    if (T > 1) {
      const m = new Float32Array(T * S);
      for (let t = 0; t < T; t++) for (let s = start + t + 1; s < S; s++) m[t * S + s] = -1e9;
      mask = tf.tensor2d(m, [T, S]);
    }
    const scale = 1 / Math.sqrt(hd);

    let x = tf.gather(this.embed, tf.tensor1d(ids, 'int32')) as TfCore.Tensor2D;
    const cache: LayerCache[] = [];
    this.layers.forEach((layer, l) => {
      const h = this.rmsNorm(x, layer.inputNorm);
      const qkv = tf.matMul(h, layer.qkv);
      const [qFlat, kFlat, vFlat] = tf.split(qkv, [numHeads * hd, kv * hd, kv * hd], 1);
      const q = this.rope(tf.reshape(qFlat!, [T, numHeads, hd]), cos, sin);
      const k = this.rope(tf.reshape(kFlat!, [T, kv, hd]), cos, sin);
      let keys = tf.transpose(k, [1, 0, 2]) as TfCore.Tensor3D; // [kv, T, hd]
      let values = tf.transpose(tf.reshape(vFlat!, [T, kv, hd]), [1, 0, 2]) as TfCore.Tensor3D;
      const past = previous?.[l];
      if (past) {
        keys = tf.concat([past.k, keys], 1);
        values = tf.concat([past.v, values], 1);
      }
      cache.push({ k: keys, v: values });
      // Query head h = kvHead * group + g: [heads, T, hd] is [kv, group * T, hd] row for row.
      const queries = tf.reshape(tf.transpose(q, [1, 0, 2]), [kv, group * T, hd]);
      let scores = tf.mul(tf.matMul(queries, keys, false, true), scale); // [kv, group * T, S]
      if (mask) scores = tf.add(tf.reshape(scores, [kv, group, T, S]), mask);
      const probs = tf.reshape(tf.softmax(scores, -1), [kv, group * T, S]);
      const attended = tf.reshape(tf.matMul(probs, values), [numHeads, T, hd]);
      const merged = tf.reshape(tf.transpose(attended, [1, 0, 2]), [T, numHeads * hd]);
      x = tf.add(x, tf.matMul(merged, layer.o)) as TfCore.Tensor2D;

      const h2 = this.rmsNorm(x, layer.postNorm);
      x = tf.add(
        x,
        layer.router ? this.moe(h2, layer, layer.router) : this.mlp(h2, layer),
      ) as TfCore.Tensor2D;
    });
    const rows: TfCore.Tensor2D = lastOnly && T > 1 ? tf.slice(x, [T - 1, 0], [1, H]) : x;
    const logits = tf.matMul(this.rmsNorm(rows, this.finalNorm), this.lmHead) as TfCore.Tensor2D;
    return { logits, cache };
  }
}
