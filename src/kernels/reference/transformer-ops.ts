import type {
  BatchedMatmulDims,
  CacheWriteDims,
  CausalSoftmaxDims,
  RopeDims,
} from '../transformer-checks.js';

/**
 * The definition of the transformer kernels (float64 accumulation), as reference-ops is of the others.
 * Every WebGPU and gpu.js transformer kernel is tested against these functions.
 */

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function batchedMatmulRef(a: Float32Array, b: Float32Array, d: BatchedMatmulDims): Float32Array {
  const { batch, m, n, k, bStride, transposeB, scale } = d;
  const bCols = transposeB ? k : n;
  const out = new Float32Array(batch * m * n);
  const row = new Float64Array(n);
  for (let z = 0; z < batch; z++) {
    const aBase = z * m * k;
    const bBase = z * bStride * bCols;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = a[aBase + i * k + p]!;
        if (transposeB) for (let j = 0; j < n; j++) row[j]! += av * b[bBase + j * k + p]!;
        else for (let j = 0; j < n; j++) row[j]! += av * b[bBase + p * n + j]!;
      }
      const o = (z * m + i) * n;
      for (let j = 0; j < n; j++) out[o + j] = row[j]! * scale;
    }
  }
  return out;
}

export function rmsNormRef(x: Float32Array, rows: number, cols: number, weight: Float32Array, eps: number) {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    let squares = 0;
    for (let c = 0; c < cols; c++) squares += x[off + c]! ** 2;
    const inv = 1 / Math.sqrt(squares / cols + eps);
    for (let c = 0; c < cols; c++) out[off + c] = x[off + c]! * inv * weight[c]!;
  }
  return out;
}

/** sum = x + residual (rounded to f32, as the add kernel stores it), normed = rmsNormRef(sum). */
export function addRmsNormRef(
  x: Float32Array,
  residual: Float32Array,
  rows: number,
  cols: number,
  weight: Float32Array,
  eps: number,
): { sum: Float32Array; normed: Float32Array } {
  const sum = x.map((v, i) => v + residual[i]!);
  return { sum, normed: rmsNormRef(sum, rows, cols, weight, eps) };
}

/** out += residual in place, elementwise (matmul's residual epilogue: one f32 add after the product). */
export function addResidualInPlace(out: Float32Array, residual: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) out[i]! += residual[i]!;
  return out;
}

export function siluRef(x: Float32Array): Float32Array {
  return x.map((v) => v * sigmoid(v));
}

export function swigluRef(gate: Float32Array, up: Float32Array): Float32Array {
  return gate.map((g, i) => g * sigmoid(g) * up[i]!);
}

export function mulRef(a: Float32Array, b: Float32Array): Float32Array {
  const period = b.length;
  return a.map((v, i) => v * b[i % period]!);
}

export function ropeRef(x: Float32Array, positions: Uint32Array, d: RopeDims, theta: number): Float32Array {
  const { rows, cols, headDim } = d;
  const half = headDim / 2;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const pos = positions[r]!;
    for (let h = 0; h < cols; h += headDim) {
      const base = r * cols + h;
      for (let i = 0; i < half; i++) {
        const angle = pos * theta ** (-(2 * i) / headDim);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const lo = x[base + i]!;
        const hi = x[base + i + half]!;
        out[base + i] = lo * cos - hi * sin;
        out[base + i + half] = hi * cos + lo * sin;
      }
    }
  }
  return out;
}

export function causalSoftmaxRef(x: Float32Array, d: CausalSoftmaxDims): Float32Array {
  const { rows, keys, queries, offset, scale } = d;
  const out = new Float32Array(rows * keys);
  for (let r = 0; r < rows; r++) {
    const visible = offset + (r % queries) + 1;
    const off = r * keys;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < visible; c++) max = Math.max(max, x[off + c]! * scale);
    let total = 0;
    for (let c = 0; c < visible; c++) total += Math.exp(x[off + c]! * scale - max);
    for (let c = 0; c < visible; c++) out[off + c] = Math.exp(x[off + c]! * scale - max) / total;
  }
  return out;
}

export function transpose01Ref(
  x: Float32Array,
  a: number,
  b: number,
  c: number,
  out: Float32Array = new Float32Array(x.length),
): Float32Array {
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) out.set(x.subarray((i * b + j) * c, (i * b + j + 1) * c), (j * a + i) * c);
  }
  return out;
}

/** Copies `outer` runs: run o of `width` elements from src at o * srcRow + srcAt to dst at o * dstRow + dstAt. */
export function copyRunsRef<T extends Float32Array | Uint32Array>(
  src: T,
  dst: T,
  runs: { outer: number; width: number; srcRow: number; srcAt: number; dstRow: number; dstAt: number },
): void {
  for (let o = 0; o < runs.outer; o++) {
    const from = o * runs.srcRow + runs.srcAt;
    dst.set(src.subarray(from, from + runs.width), o * runs.dstRow + runs.dstAt);
  }
}

export function argmaxRef(
  x: Float32Array,
  rows: number,
  cols: number,
): { indices: Uint32Array; values: Float32Array } {
  const indices = new Uint32Array(rows);
  const values = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + best]!) best = c;
    indices[r] = best;
    values[r] = x[r * cols + best]!;
  }
  return { indices, values };
}

/**
 * Per row of logits [rows, experts]: the k largest (ties to the lower expert) and a softmax over them in
 * float64, which is Mixtral's softmax over all experts renormalised over the chosen k.
 */
export function routerTopKRef(
  logits: Float32Array,
  rows: number,
  experts: number,
  k: number,
): { indices: Uint32Array; weights: Float32Array } {
  const indices = new Uint32Array(rows * k);
  const weights = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * experts, (r + 1) * experts);
    const order = Array.from({ length: experts }, (_, e) => e).sort((a, b) => row[b]! - row[a]! || a - b);
    const chosen = order.slice(0, k);
    const exps = chosen.map((e) => Math.exp(row[e]! - row[chosen[0]!]!));
    const total = exps.reduce((a, b) => a + b, 0);
    chosen.forEach((e, j) => {
      indices[r * k + j] = e;
      weights[r * k + j] = exps[j]! / total;
    });
  }
  return { indices, weights };
}

export function writeCacheRef(
  cache: Float32Array,
  x: Float32Array,
  d: CacheWriteDims,
  position: number,
): void {
  const { heads, capacity, headDim, tokens } = d;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const from = (t * heads + h) * headDim;
      cache.set(x.subarray(from, from + headDim), (h * capacity + position + t) * headDim);
    }
  }
}
