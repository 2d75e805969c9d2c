import { ParallelError } from '../../errors.js';

/** gpu.js reads every argument as f32, which holds integers exactly only below 2^24. */
const F32_EXACT_INTEGERS = 2 ** 24;

/**
 * Token ids as the f32 array a gpu.js kernel reads. Ids far outside this table's rows all give zero rows,
 * so they are clamped to one id just outside (keeping them exact); only the table's own range must be below
 * 2^24.
 */
export function embeddingIds(ids: Uint32Array, rowOffset: number, vocabRows: number): Float32Array {
  const end = rowOffset + vocabRows;
  if (end > F32_EXACT_INTEGERS) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `embedding: rows up to ${end} cannot be addressed exactly by gpu.js (f32 ids)`,
      {
        where: 'gpujs embedding',
        fix: 'split the vocabulary over more devices so that rowOffset + rows stays below 16777216, or use the webgpu backend',
      },
    );
  }
  const out = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = Math.min(ids[i]!, end);
  return out;
}
