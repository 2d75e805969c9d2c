import { expect } from 'vitest';
import { makeRandom } from '../../src/random.js';

export interface Tolerance {
  /** Relative to the reference's magnitude at each element (or `scale`, when given, for every element). */
  readonly rtol: number;
  readonly atol: number;
}

/** f32 against a float64-accumulated reference: error grows with sqrt(K) and the size of the values. */
export function matmulTolerance(k: number): Tolerance {
  return { rtol: 2e-6 * Math.sqrt(k) + 1e-6, atol: 1e-5 };
}

/**
 * Asserts elementwise closeness: |a - e| <= atol + rtol * scale_i. A failure prints the first mismatches
 * with their indices and both values (llm.c style), not a 1000-element diff.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: Tolerance,
  scale?: ArrayLike<number>,
): void {
  expect(actual.length, 'length').toBe(expected.length);
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    const limit = tolerance.atol + tolerance.rtol * Math.abs(scale ? scale[i]! : e);
    const err = Math.abs(a - e);
    worst = Math.max(worst, err);
    if (!(err <= limit)) {
      count++;
      if (bad.length < 5)
        bad.push(`  [${i}] got ${a}, want ${e} (|diff| ${err.toExponential(2)} > ${limit.toExponential(2)})`);
    }
  }
  if (count > 0) {
    expect.fail(
      `${count} of ${expected.length} values differ (worst |diff| ${worst.toExponential(2)}):\n${bad.join('\n')}`,
    );
  }
}

/** Deterministic values in [-1, 1) from a seed, so a failing case reruns the same. */
export function randomArray(n: number, seed: number): Float32Array {
  const random = makeRandom(seed);
  return Float32Array.from({ length: n }, () => random() * 2 - 1);
}

/** Sum over k of |a[i, k] * b[k, j]|: the magnitude a matmul's rounding error scales with. */
export function matmulMagnitude(
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = Math.abs(a[i * k + p]!);
      for (let j = 0; j < n; j++) out[i * n + j]! += av * Math.abs(b[p * n + j]!);
    }
  }
  return out;
}
