import type { Activation } from '../kernels.js';
import { deinterleaveRows4 } from './gpujs-output.js';
import { matmulRows4 } from './gpujs-sources.js';
import type { KernelCache } from './kernel-cache.js';

const ACTIVATION_CODE: Readonly<Record<Activation, number>> = { none: 0, relu: 1, gelu: 2 };

export interface GpuJsMatmulInput {
  readonly a: Float32Array;
  readonly b: Float32Array;
  /** [N] or absent (zeros). */
  readonly bias?: Float32Array;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly activation?: Activation;
}

/**
 * C[M, N] = act(A[M, K] · B[K, N] + bias) on gpu.js, by the four-rows-per-thread kernel (`matmulRows4`):
 * [N, ceil(M/4)] threads, each returning four rows of one column, de-interleaved here into row-major C.
 */
export async function gpujsMatmul(cache: KernelCache, input: GpuJsMatmulInput): Promise<Float32Array> {
  const { m, n, k } = input;
  const blocks = Math.ceil(m / 4);
  const spec = {
    body: matmulRows4,
    output: [n, blocks] as const,
    constants: {
      K: k,
      K4: k - (k % 4),
      N: n,
      lastRow: m - 1,
      act: ACTIVATION_CODE[input.activation ?? 'none'],
    },
    returnType: 'Array(4)' as const,
  };
  const bias = input.bias ?? new Float32Array(n);
  const result = await cache.run(spec, [input.a, input.b, bias]);
  return deinterleaveRows4(result, n, blocks, m, 'matmul');
}
