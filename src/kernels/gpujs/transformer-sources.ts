import type { IKernelFunctionThis } from 'gpu.js';

/**
 * The transformer kernels' bodies in gpu.js's kernel language, under the rules in gpujs-sources' header:
 * loops bounded by `this.constants.*` (with a literal start, or gpu.js caps them at 1000 iterations), flat
 * arrays, rows from `this.thread.y`. Two more, particular to these bodies:
 * - outputs are 2-D, so a batch or head index folded into thread.y is recovered as
 *   `Math.floor(y / n) | 0`: the quotient is an f32 division, correctly rounded and therefore floored
 *   exactly while y < 2^24 (every output here is smaller, see f32-index-limit), and `| 0` makes it an
 *   integer (gpu.js's bitwise operators are i32 operations);
 * - a per-row bound (the causal mask) is tested inside a loop bounded by a constant, then `break`s: the bound
 *   depends on y only, so the webasm backend's four lanes leave the loop together.
 */

type This<C> = IKernelFunctionThis<C>;

export type BatchedMatmulConstants = {
  K: number;
  /** K rounded down to a multiple of 4: the unrolled loop's bound. */
  K4: number;
  /** Threads along y per batch: M (one row each) or ceil(M / 4) (four rows each). */
  perBatch: number;
  /** Last row of A in a batch: the padding rows of a batch's last block of 4 read it instead. */
  lastRow: number;
  /** Elements of one batch of A (M * K) and of B as stored (its capacity times its row width). */
  aBatch: number;
  bBatch: number;
  /**
   * Steps through B from (p, x) to (p + 1, x) and to (p, x + 1): (N, 1) for B [K, N], (1, K) for B
   * transposed ([N, K] rows). One body serves both layouts, and `bRows` needs nothing: rows past it are
   * never reached.
   */
  bP: number;
  bX: number;
  scale: number;
};

/**
 * C[z] = scale · A[z] · B[z], one row per thread: thread (x, z * M + i) gives C[z][i][x]. For few rows (a
 * decode step's one query per head), where four rows per thread would mostly compute padding.
 */
export function batchedMatmulRow(this: This<BatchedMatmulConstants>, a: number[], b: number[]): number {
  const K = this.constants.K;
  const step = this.constants.bP | 0;
  const y = this.thread.y;
  const z = Math.floor(y / this.constants.perBatch) | 0;
  const r = (z * this.constants.aBatch + (y - z * this.constants.perBatch) * K) | 0;
  let p = (z * this.constants.bBatch + this.thread.x * this.constants.bX) | 0;
  let s = 0;
  for (let i = 0; i < this.constants.K4; i += 4) {
    s += a[r + i]! * b[p]!;
    s += a[r + i + 1]! * b[p + step]!;
    s += a[r + i + 2]! * b[p + 2 * step]!;
    s += a[r + i + 3]! * b[p + 3 * step]!;
    p += 4 * step;
  }
  for (let i = this.constants.K4; i < this.constants.K; i++) {
    s += a[r + i]! * b[p]!;
    p += step;
  }
  return s * this.constants.scale;
}

/**
 * C[z] = scale · A[z] · B[z], four rows per thread as gpujs-sources' matmulRows4 (each B value loaded feeds
 * four rows): thread (x, z * ceil(M/4) + j) returns C[z][4j .. 4j+3][x] as one Array(4).
 */
export function batchedMatmulRows4(this: This<BatchedMatmulConstants>, a: number[], b: number[]): number[] {
  const K = this.constants.K;
  const step = this.constants.bP | 0;
  const last = this.constants.lastRow;
  const y = this.thread.y;
  const z = Math.floor(y / this.constants.perBatch) | 0;
  const row = ((y - z * this.constants.perBatch) * 4) | 0;
  const aBase = z * this.constants.aBatch;
  const r0 = (aBase + row * K) | 0;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r1 = (aBase + (row + 1 < last ? row + 1 : last) * K) | 0;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r2 = (aBase + (row + 2 < last ? row + 2 : last) * K) | 0;
  // biome-ignore lint/complexity/useMathMinMax: gpu.js types Math.min as f32; the ternary keeps the row index an integer.
  const r3 = (aBase + (row + 3 < last ? row + 3 : last) * K) | 0;
  let p = (z * this.constants.bBatch + this.thread.x * this.constants.bX) | 0;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let i = 0; i < this.constants.K4; i += 4) {
    const b0 = b[p]!;
    s0 += a[r0 + i]! * b0;
    s1 += a[r1 + i]! * b0;
    s2 += a[r2 + i]! * b0;
    s3 += a[r3 + i]! * b0;
    const b1 = b[p + step]!;
    s0 += a[r0 + i + 1]! * b1;
    s1 += a[r1 + i + 1]! * b1;
    s2 += a[r2 + i + 1]! * b1;
    s3 += a[r3 + i + 1]! * b1;
    const b2 = b[p + 2 * step]!;
    s0 += a[r0 + i + 2]! * b2;
    s1 += a[r1 + i + 2]! * b2;
    s2 += a[r2 + i + 2]! * b2;
    s3 += a[r3 + i + 2]! * b2;
    const b3 = b[p + 3 * step]!;
    s0 += a[r0 + i + 3]! * b3;
    s1 += a[r1 + i + 3]! * b3;
    s2 += a[r2 + i + 3]! * b3;
    s3 += a[r3 + i + 3]! * b3;
    p += 4 * step;
  }
  for (let i = this.constants.K4; i < this.constants.K; i++) {
    const bv = b[p]!;
    s0 += a[r0 + i]! * bv;
    s1 += a[r1 + i]! * bv;
    s2 += a[r2 + i]! * bv;
    s3 += a[r3 + i]! * bv;
    p += step;
  }
  const scale = this.constants.scale;
  return [s0 * scale, s1 * scale, s2 * scale, s3 * scale];
}

export type RmsConstants = { C: number; eps: number };

/** Per row of x [R, C]: 1 / sqrt(mean(x²) + eps). Output [1, R]. */
export function rmsInverse(this: This<RmsConstants>, x: number[]): number {
  const base = this.thread.y * this.constants.C;
  let squares = 0;
  for (let c = 0; c < this.constants.C; c++) {
    const v = x[base + c]!;
    squares += v * v;
  }
  return 1 / Math.sqrt(squares / this.constants.C + this.constants.eps);
}

export type WidthConstants = { W: number };

/** x · inv[row] · weight[x], with the per-row factors from `rmsInverse`. Output [C, R]. */
export function rmsScaleRows(
  this: This<WidthConstants>,
  x: number[],
  inv: number[],
  weight: number[],
): number {
  const y = this.thread.y;
  return x[y * this.constants.W + this.thread.x]! * inv[y]! * weight[this.thread.x]!;
}

/** x · sigmoid(x), written x / (1 + exp(-x)): one rounding fewer than x · (1 / (1 + exp(-x))). */
export function siluCells(this: This<WidthConstants>, x: number[]): number {
  const v = x[this.thread.y * this.constants.W + this.thread.x]!;
  return v / (1 + Math.exp(-v));
}

export function swigluCells(this: This<WidthConstants>, gate: number[], up: number[]): number {
  const i = this.thread.y * this.constants.W + this.thread.x;
  const g = gate[i]!;
  return (g / (1 + Math.exp(-g))) * up[i]!;
}

export function mulSame(this: This<WidthConstants>, a: number[], b: number[]): number {
  const i = this.thread.y * this.constants.W + this.thread.x;
  return a[i]! * b[i]!;
}

/** a · b[x]: b is one row, broadcast over a's rows. */
export function mulRow(this: This<WidthConstants>, a: number[], b: number[]): number {
  return a[this.thread.y * this.constants.W + this.thread.x]! * b[this.thread.x]!;
}

export type RopeConstants = { headDim: number; half: number; heads: number; theta: number };

/**
 * Rotate-half RoPE on x viewed as [T * heads, headDim]: thread (x, t * heads + h) gives element x of head h
 * of row t. The first half pairs with the element half a head on (lo · cos - hi · sin), the second half with
 * the one half a head back (hi · cos + lo · sin); positions are row t's, as f32 (exact below 2^24).
 */
export function ropeCells(this: This<RopeConstants>, x: number[], positions: number[]): number {
  const half = this.constants.half | 0;
  const col = this.thread.x;
  const base = this.thread.y * this.constants.headDim;
  const pos = positions[Math.floor(this.thread.y / this.constants.heads) | 0]!;
  let i = col;
  let partner = col + half;
  let sign = -1;
  if (col >= half) {
    i = col - half;
    partner = col - half;
    sign = 1;
  }
  const angle = pos * this.constants.theta ** (-(2 * i) / this.constants.headDim);
  return x[base + col]! * Math.cos(angle) + sign * x[base + partner]! * Math.sin(angle);
}

export type CausalConstants = { keys: number; queries: number; offset: number; scale: number };

/**
 * Per row of x [R, keys]: thread (0, r) gives the max of scale · x over the keys row r sees, thread (1, r)
 * the sum of exp(scale · x - max) over them. Row r is query r % queries, seeing offset + r % queries + 1
 * keys. Output [2, R], read as (max, total) pairs by `causalSoftmaxRows`.
 */
export function causalSoftmaxStats(this: This<CausalConstants>, x: number[]): number {
  const y = this.thread.y;
  const query = y - (Math.floor(y / this.constants.queries) | 0) * this.constants.queries;
  const visible = this.constants.offset + query + 1;
  const base = y * this.constants.keys;
  const scale = this.constants.scale;
  let max = x[base]! * scale;
  for (let c = 1; c < this.constants.keys; c++) {
    if (c >= visible) break;
    max = Math.max(max, x[base + c]! * scale);
  }
  if (this.thread.x === 0) {
    return max;
  }
  let total = 0;
  for (let c = 0; c < this.constants.keys; c++) {
    if (c >= visible) break;
    total += Math.exp(x[base + c]! * scale - max);
  }
  return total;
}

/** exp(scale · x - max) / total where row y sees key x, 0 where the mask hides it. Output [keys, R]. */
export function causalSoftmaxRows(this: This<CausalConstants>, x: number[], stats: number[]): number {
  const y = this.thread.y;
  const query = y - (Math.floor(y / this.constants.queries) | 0) * this.constants.queries;
  if (this.thread.x > this.constants.offset + query) {
    return 0;
  }
  const v = x[y * this.constants.keys + this.thread.x]! * this.constants.scale;
  return Math.exp(v - stats[2 * y]!) / stats[2 * y + 1]!;
}

export type ArgmaxConstants = { C: number };

/**
 * The column of row y's largest value, the first on ties (a strictly greater value moves it; NaN never
 * does, as in the reference). Output [1, R]; columns are exact in f32 below 2^24.
 */
export function argmaxColumn(this: This<ArgmaxConstants>, x: number[]): number {
  const base = this.thread.y * this.constants.C;
  let best = x[base]!;
  let at = 0;
  for (let c = 1; c < this.constants.C; c++) {
    const v = x[base + c]!;
    if (v > best) {
      best = v;
      at = c;
    }
  }
  return at;
}

export type RouterConstants = { E: number; K: number };

/**
 * Expert x of row y's top k: the largest logit, then each pick the first after the previous one in the
 * order "larger value first, then lower expert" (so ties go to the lower expert). Output [K, R].
 */
export function routerPick(this: This<RouterConstants>, logits: number[]): number {
  const base = this.thread.y * this.constants.E;
  let prevV = 3.4e38;
  let prevI = -1;
  let pick = 0;
  for (let j = 0; j < this.constants.K; j++) {
    if (j <= this.thread.x) {
      let bestV = 0;
      let bestI = -1;
      for (let e = 0; e < this.constants.E; e++) {
        const v = logits[base + e]!;
        const later = j === 0 || v < prevV || (v === prevV && e > prevI);
        if (later && (bestI < 0 || v > bestV)) {
          bestV = v;
          bestI = e;
        }
      }
      prevV = bestV;
      prevI = bestI;
      pick = bestI;
    }
  }
  return pick;
}
