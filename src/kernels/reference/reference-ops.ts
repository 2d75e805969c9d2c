import type { Activation } from '../kernels.js';

/**
 * The living definition of every kernel: plain loops with float64 accumulation. Each WebGPU and gpu.js
 * kernel is tested against these functions.
 */

const GELU_C = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (as in GPT-2 and Megatron's bias_gelu). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}

export function activate(x: number, activation: Activation): number {
  if (activation === 'relu') return Math.max(x, 0);
  if (activation === 'gelu') return gelu(x);
  return x;
}

export function matmulRef(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  bias?: Float32Array,
  activation: Activation = 'none',
): Float32Array {
  const out = new Float32Array(m * n);
  const [r0, r1, r2, r3] = [0, 1, 2, 3].map(() => new Float64Array(n)) as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  const store = (i: number, row: Float64Array) => {
    for (let j = 0; j < n; j++) out[i * n + j] = activate(row[j]! + (bias ? bias[j]! : 0), activation);
  };
  let i = 0;
  // Four rows at a time, so that each value of b, once loaded, feeds four sums: 1.5x faster in V8 (256x512
  // by 512x2048: 335 -> 225 ms; `run`'s seed-fits reference 4.5 -> 2.7 s). Every sum still runs over p in
  // order, so for finite inputs the result is the same to the bit as one row at a time.
  for (; i + 4 <= m; i += 4) {
    for (const row of [r0, r1, r2, r3]) row.fill(0);
    for (let p = 0; p < k; p++) {
      const a0 = a[i * k + p]!;
      const a1 = a[(i + 1) * k + p]!;
      const a2 = a[(i + 2) * k + p]!;
      const a3 = a[(i + 3) * k + p]!;
      if (a0 === 0 && a1 === 0 && a2 === 0 && a3 === 0) continue;
      const bOff = p * n;
      for (let j = 0; j < n; j++) {
        const bv = b[bOff + j]!;
        r0[j]! += a0 * bv;
        r1[j]! += a1 * bv;
        r2[j]! += a2 * bv;
        r3[j]! += a3 * bv;
      }
    }
    store(i, r0);
    store(i + 1, r1);
    store(i + 2, r2);
    store(i + 3, r3);
  }
  for (; i < m; i++) {
    r0.fill(0);
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      const bOff = p * n;
      for (let j = 0; j < n; j++) r0[j]! += av * b[bOff + j]!;
    }
    store(i, r0);
  }
  return out;
}

export function embeddingRef(
  table: Float32Array,
  hidden: number,
  vocabRows: number,
  ids: Uint32Array,
  rowOffset = 0,
): Float32Array {
  const out = new Float32Array(ids.length * hidden);
  ids.forEach((id, t) => {
    const r = id - rowOffset;
    if (r >= 0 && r < vocabRows) out.set(table.subarray(r * hidden, (r + 1) * hidden), t * hidden);
  });
  return out;
}

export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  const period = b.length;
  return a.map((v, i) => v + b[i % period]!);
}

export function scaleRef(a: Float32Array, factor: number): Float32Array {
  return a.map((v) => v * factor);
}

export function sumRef(inputs: readonly Float32Array[]): Float32Array {
  const n = inputs[0]!.length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const x of inputs) s += x[i]!;
    out[i] = s;
  }
  return out;
}

export function meanRowsRef(
  x: Float32Array,
  groups: number,
  rowsPerGroup: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(groups * cols);
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let r = 0; r < rowsPerGroup; r++) s += x[(g * rowsPerGroup + r) * cols + c]!;
      out[g * cols + c] = s / rowsPerGroup;
    }
  }
  return out;
}

export function layerNormRef(
  x: Float32Array,
  rows: number,
  cols: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[off + c]!;
    mean /= cols;
    let variance = 0;
    for (let c = 0; c < cols; c++) variance += (x[off + c]! - mean) ** 2;
    variance /= cols;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let c = 0; c < cols; c++) out[off + c] = (x[off + c]! - mean) * inv * gamma[c]! + beta[c]!;
  }
  return out;
}

export function softmaxRef(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[off + c]!);
    let total = 0;
    for (let c = 0; c < cols; c++) total += Math.exp(x[off + c]! - max);
    for (let c = 0; c < cols; c++) out[off + c] = Math.exp(x[off + c]! - max) / total;
  }
  return out;
}
