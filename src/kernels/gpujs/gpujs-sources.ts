import type { IKernelFunctionThis } from 'gpu.js';

/**
 * The kernel bodies, written in gpu.js's kernel language (a JavaScript subset that gpu.js parses from the
 * function's source and compiles to WebAssembly or runs as plain JS). Rules every body here follows, because
 * gpu.js breaks them silently otherwise:
 * - every loop is bounded by `this.constants.*`: a loop bounded by an argument stops at 1000 iterations;
 * - arrays are flat (1-D) row-major: index arithmetic stays in integers;
 * - row indices come from `this.thread.y`: the webasm backend vectorizes over 4 consecutive `thread.x`, so
 *   values that depend only on y are one scalar for all 4 lanes, and loads indexed by x are gathers.
 * Shapes and constants are baked when a kernel is first run, so the cache key names every one of them.
 */

type This<C> = IKernelFunctionThis<C>;

export type MatmulConstants = {
  /** Inner dimension. */
  K: number;
  /** K rounded down to a multiple of 4: the unrolled loop's bound. */
  K4: number;
  N: number;
  /** Last valid row of A: rows past it (the padding of the last block of 4) read this row instead. */
  lastRow: number;
  /** 0 none, 1 relu, 2 gelu (tanh approximation). */
  act: number;
};

/**
 * C = act(A·B + bias), four rows of C per thread: thread (x, y) computes C[4y .. 4y+3][x] and returns them as
 * one Array(4). Each B value loaded feeds four multiply-adds (the classic kernel: one), and the inner loop is
 * unrolled by 4 because gpu.js's per-iteration overhead is large. The output is [N, ceil(M/4)] cells of 4:
 * the host de-interleaves it.
 */
export function matmulRows4(this: This<MatmulConstants>, a: number[], b: number[], bias: number[]): number[] {
  const K = this.constants.K;
  const N = this.constants.N;
  const x = this.thread.x;
  const y = this.thread.y * 4;
  const last = this.constants.lastRow;
  const r0 = y * K;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r1 = (y + 1 < last ? y + 1 : last) * K;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r2 = (y + 2 < last ? y + 2 : last) * K;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r3 = (y + 3 < last ? y + 3 : last) * K;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let i = 0; i < this.constants.K4; i += 4) {
    const p = i * N + x;
    const b0 = b[p]!;
    s0 += a[r0 + i]! * b0;
    s1 += a[r1 + i]! * b0;
    s2 += a[r2 + i]! * b0;
    s3 += a[r3 + i]! * b0;
    const b1 = b[p + N]!;
    s0 += a[r0 + i + 1]! * b1;
    s1 += a[r1 + i + 1]! * b1;
    s2 += a[r2 + i + 1]! * b1;
    s3 += a[r3 + i + 1]! * b1;
    const b2 = b[p + 2 * N]!;
    s0 += a[r0 + i + 2]! * b2;
    s1 += a[r1 + i + 2]! * b2;
    s2 += a[r2 + i + 2]! * b2;
    s3 += a[r3 + i + 2]! * b2;
    const b3 = b[p + 3 * N]!;
    s0 += a[r0 + i + 3]! * b3;
    s1 += a[r1 + i + 3]! * b3;
    s2 += a[r2 + i + 3]! * b3;
    s3 += a[r3 + i + 3]! * b3;
  }
  for (let i = this.constants.K4; i < this.constants.K; i++) {
    const bv = b[i * N + x]!;
    s0 += a[r0 + i]! * bv;
    s1 += a[r1 + i]! * bv;
    s2 += a[r2 + i]! * bv;
    s3 += a[r3 + i]! * bv;
  }
  const bx = bias[x]!;
  s0 += bx;
  s1 += bx;
  s2 += bx;
  s3 += bx;
  if (this.constants.act === 1) {
    s0 = Math.max(s0, 0);
    s1 = Math.max(s1, 0);
    s2 = Math.max(s2, 0);
    s3 = Math.max(s3, 0);
  }
  if (this.constants.act === 2) {
    // 0.7978845608 = sqrt(2 / pi), as in reference-ops' gelu.
    s0 = 0.5 * s0 * (1 + Math.tanh(0.7978845608028654 * (s0 + 0.044715 * s0 * s0 * s0)));
    s1 = 0.5 * s1 * (1 + Math.tanh(0.7978845608028654 * (s1 + 0.044715 * s1 * s1 * s1)));
    s2 = 0.5 * s2 * (1 + Math.tanh(0.7978845608028654 * (s2 + 0.044715 * s2 * s2 * s2)));
    s3 = 0.5 * s3 * (1 + Math.tanh(0.7978845608028654 * (s3 + 0.044715 * s3 * s3 * s3)));
  }
  return [s0, s1, s2, s3];
}

export type EmbeddingConstants = { H: number; V: number; rowOffset: number };

/** out[t][h] = table[ids[t] - rowOffset][h] when that row is held here, else 0. Output [H, T]. */
export function embeddingRows(this: This<EmbeddingConstants>, table: number[], ids: number[]): number {
  const r = ids[this.thread.y]! - this.constants.rowOffset;
  if (r >= 0 && r < this.constants.V) {
    return table[r * this.constants.H + this.thread.x]!;
  }
  return 0;
}

export type WidthConstants = { W: number };

/** a + b, both [W, H] views of one shape. */
export function addSame(this: This<WidthConstants>, a: number[], b: number[]): number {
  const i = this.thread.y * this.constants.W + this.thread.x;
  return a[i]! + b[i]!;
}

/** a + b[x]: b is one row, broadcast over a's rows. */
export function addRow(this: This<WidthConstants>, a: number[], b: number[]): number {
  return a[this.thread.y * this.constants.W + this.thread.x]! + b[this.thread.x]!;
}

export type ScaleConstants = { W: number; factor: number };

export function scaleBy(this: This<ScaleConstants>, a: number[]): number {
  return a[this.thread.y * this.constants.W + this.thread.x]! * this.constants.factor;
}

export type SumConstants = { W: number; size: number; count: number };

/** Elementwise sum of `count` tensors stacked one after another in `stacked`. */
export function sumStacked(this: This<SumConstants>, stacked: number[]): number {
  const i = this.thread.y * this.constants.W + this.thread.x;
  let s = 0;
  for (let k = 0; k < this.constants.count; k++) {
    s += stacked[k * this.constants.size + i]!;
  }
  return s;
}

export type MeanRowsConstants = { C: number; rowsPerGroup: number };

/** out[g][c] = mean over the group's rows of x[g * rowsPerGroup + r][c]. Output [C, G]. */
export function meanOfGroups(this: This<MeanRowsConstants>, x: number[]): number {
  const base = this.thread.y * this.constants.rowsPerGroup * this.constants.C + this.thread.x;
  let s = 0;
  for (let r = 0; r < this.constants.rowsPerGroup; r++) {
    s += x[base + r * this.constants.C]!;
  }
  return s / this.constants.rowsPerGroup;
}

export type RowStatsConstants = { C: number; eps: number };

/**
 * Per row of x [R, C]: thread (0, r) gives the mean, thread (1, r) 1/sqrt(variance + eps), both by the
 * reference's two passes. Output [2, R], read flat as (mean, rstd) pairs by `normalizeRows`.
 */
export function layerNormStats(this: This<RowStatsConstants>, x: number[]): number {
  const base = this.thread.y * this.constants.C;
  let mean = 0;
  for (let c = 0; c < this.constants.C; c++) {
    mean += x[base + c]!;
  }
  mean = mean / this.constants.C;
  if (this.thread.x === 0) {
    return mean;
  }
  let variance = 0;
  for (let c = 0; c < this.constants.C; c++) {
    const d = x[base + c]! - mean;
    variance += d * d;
  }
  return 1 / Math.sqrt(variance / this.constants.C + this.constants.eps);
}

export type RowConstants = { C: number };

/** (x - mean) * rstd * gamma + beta, with the per-row stats from `layerNormStats`. Output [C, R]. */
export function normalizeRows(
  this: This<RowConstants>,
  x: number[],
  stats: number[],
  gamma: number[],
  beta: number[],
): number {
  const y = this.thread.y;
  const v = x[y * this.constants.C + this.thread.x]!;
  return (v - stats[2 * y]!) * stats[2 * y + 1]! * gamma[this.thread.x]! + beta[this.thread.x]!;
}

/** Per row: thread (0, r) gives the row's max, thread (1, r) the sum of exp(x - max). Output [2, R]. */
export function softmaxStats(this: This<RowConstants>, x: number[]): number {
  const base = this.thread.y * this.constants.C;
  let max = x[base]!;
  for (let c = 1; c < this.constants.C; c++) {
    max = Math.max(max, x[base + c]!);
  }
  if (this.thread.x === 0) {
    return max;
  }
  let total = 0;
  for (let c = 0; c < this.constants.C; c++) {
    total += Math.exp(x[base + c]! - max);
  }
  return total;
}

/** exp(x - max) / total, with the per-row stats from `softmaxStats`. Output [C, R]. */
export function softmaxRows(this: This<RowConstants>, x: number[], stats: number[]): number {
  const y = this.thread.y;
  return Math.exp(x[y * this.constants.C + this.thread.x]! - stats[2 * y]!) / stats[2 * y + 1]!;
}
