import { matmulRef } from '../src/kernels/reference/reference-ops.js';
import { makeRandom } from '../src/random.js';

/** Deterministic values in [-1, 1). */
export function benchArray(n: number, seed: number): Float32Array {
  const random = makeRandom(seed);
  return Float32Array.from({ length: n }, () => random() * 2 - 1);
}

/**
 * Checks a matmul result against the float64 reference on a sample of rows (first, last and evenly spaced
 * ones): the full reference at 2048³ would take longer than the whole bench. Returns false on any miss.
 */
export function matmulRowsMatch(
  c: Float32Array,
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
): boolean {
  const rows = [
    ...new Set([0, m - 1, ...Array.from({ length: 6 }, (_, i) => Math.floor(((i + 1) * m) / 7))]),
  ];
  const tolerance = 2e-6 * Math.sqrt(k) + 1e-6;
  for (const r of rows) {
    const want = matmulRef(a.subarray(r * k, (r + 1) * k), b, 1, n, k);
    for (let j = 0; j < n; j++) {
      let magnitude = 0;
      for (let p = 0; p < k; p++) magnitude += Math.abs(a[r * k + p]! * b[p * n + j]!);
      if (!(Math.abs(c[r * n + j]! - want[j]!) <= 1e-5 + tolerance * magnitude)) return false;
    }
  }
  return true;
}
