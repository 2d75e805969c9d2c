import { ParallelError } from '../../errors.js';
import type { Tensor } from '../../runtime/tensor.js';

/**
 * gpu.js computes array indices that involve a constant in f32 (measured: a[2^24 + 1 + x] reads the wrong
 * elements), and f32 holds integers exactly only below 2^24. Every array a kernel reads must therefore have
 * fewer elements than this; larger operands get a typed error instead of silently wrong values.
 */
export const F32_INDEX_LIMIT = 2 ** 24;

export function checkIndexable(op: string, ...operands: readonly (Tensor | number)[]): void {
  for (const operand of operands) {
    const size = typeof operand === 'number' ? operand : operand.size;
    if (size >= F32_INDEX_LIMIT) {
      const name = typeof operand === 'number' ? 'an operand' : `'${operand.label}'`;
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `${op}: ${name} has ${size} elements; gpu.js indexes only below 2^24`,
        {
          where: `gpujs ${op}`,
          fix: 'shard the tensor over more devices so every shard stays below 16777216 elements, or use the webgpu backend',
        },
      );
    }
  }
}
