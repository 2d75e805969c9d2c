import { ParallelError } from '../errors.js';
import { formatShape, type Tensor } from '../runtime/tensor.js';
import type { BatchedMatmulOptions, CausalSoftmaxOptions, RopeOptions } from './kernels.js';
import { checkDType, sameShape } from './shape-checks.js';

/** Operand checks of the transformer kernels, shared by every backend so a mistake reads the same on each. */

function shapeError(op: string, message: string, fix?: string): ParallelError {
  return new ParallelError('SHAPE', `${op}: ${message}`, fix ? { where: op, fix } : { where: op });
}

function positiveInteger(op: string, name: string, value: number, min = 1): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ParallelError('INVALID_ARGUMENT', `${op}: ${name} must be an integer >= ${min}, got ${value}`, {
      where: op,
    });
  }
}

export interface BatchedMatmulDims {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** Rows of b per batch as stored (its capacity); the kernel reads the first n (transposed) or k of them. */
  readonly bStride: number;
  readonly transposeB: boolean;
  readonly scale: number;
}

export function batchedMatmulDims(a: Tensor, b: Tensor, options: BatchedMatmulOptions): BatchedMatmulDims {
  const op = 'batchedMatmul';
  checkDType(op, a, 'f32');
  checkDType(op, b, 'f32');
  if (a.shape.length !== 3 || b.shape.length !== 3) {
    throw shapeError(
      op,
      `operands must be 3-D, got '${a.label}' ${formatShape(a.shape)} and '${b.label}' ${formatShape(b.shape)}`,
      'reshape to [batch, rows, cols] (a view, no copy)',
    );
  }
  const [batch, m, k] = a.shape as [number, number, number];
  const [bBatch, bStored, bCols] = b.shape as [number, number, number];
  if (bBatch !== batch) throw shapeError(op, `batch sizes differ: ${batch} and ${bBatch}`);
  const bRows = options.bRows ?? bStored;
  positiveInteger(op, 'bRows', bRows, 0);
  if (bRows > bStored) throw shapeError(op, `bRows ${bRows} exceeds the ${bStored} rows of '${b.label}'`);
  const transposeB = options.transposeB ?? false;
  const inner = transposeB ? bCols : bRows;
  if (inner !== k) {
    throw shapeError(
      op,
      `inner dimensions differ: '${a.label}' ${formatShape(a.shape)} · '${b.label}' ${formatShape(b.shape)}${transposeB ? 'ᵀ' : ''} (using ${bRows} rows)`,
    );
  }
  return {
    batch,
    m,
    k,
    n: transposeB ? bRows : bCols,
    bStride: bStored,
    transposeB,
    scale: options.scale ?? 1,
  };
}

/** x's rows and columns when the last dim is the one reduced over (rows of no columns count too). */
export function lastDimRows(_op: string, x: Tensor): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1]!;
  return { rows: x.shape.slice(0, -1).reduce((n, d) => n * d, 1), cols };
}

/** argmax's rows: a row with no columns has no largest value, so [R, 0] with R > 0 is refused. */
export function argmaxDims(x: Tensor): { rows: number; cols: number } {
  checkDType('argmax', x, 'f32');
  const dims = lastDimRows('argmax', x);
  if (dims.cols === 0 && dims.rows > 0) {
    throw shapeError('argmax', `the ${dims.rows} rows of '${x.label}' have no columns to pick from`);
  }
  return dims;
}

/** Logits [..., experts] and a k of 1..experts: rows to route and experts per row. */
export function routerTopKDims(logits: Tensor, k: number): { rows: number; experts: number } {
  checkDType('routerTopK', logits, 'f32');
  const { rows, cols } = lastDimRows('routerTopK', logits);
  if (!Number.isSafeInteger(k) || k < 1 || k > cols) {
    throw shapeError(
      'routerTopK',
      `k must be an integer from 1 to the ${cols} experts of '${logits.label}', got ${k}`,
      'pick experts per token (num_experts_per_tok) no larger than the number of experts',
    );
  }
  return { rows, experts: cols };
}

export function rmsNormDims(x: Tensor, weight: Tensor): { rows: number; cols: number } {
  checkDType('rmsNorm', x, 'f32');
  checkDType('rmsNorm', weight, 'f32');
  const dims = lastDimRows('rmsNorm', x);
  if (weight.size !== dims.cols) {
    throw shapeError(
      'rmsNorm',
      `'${weight.label}' must hold ${dims.cols} values, got ${formatShape(weight.shape)}`,
    );
  }
  return dims;
}

/** addRmsNorm: x and residual of one shape, weight of its last dim. */
export function addRmsNormDims(x: Tensor, residual: Tensor, weight: Tensor): { rows: number; cols: number } {
  pairShapes('addRmsNorm', x, residual);
  return rmsNormDims(x, weight);
}

export function pairShapes(op: string, a: Tensor, b: Tensor): void {
  checkDType(op, a, 'f32');
  checkDType(op, b, 'f32');
  sameShape(op, a, b);
}

export interface RopeDims {
  readonly rows: number;
  readonly cols: number;
  readonly headDim: number;
}

export function ropeDims(x: Tensor, positions: Tensor, options: RopeOptions): RopeDims {
  const op = 'rope';
  checkDType(op, x, 'f32');
  checkDType(op, positions, 'u32');
  positiveInteger(op, 'headDim', options.headDim, 2);
  if (options.headDim % 2 !== 0) throw shapeError(op, `headDim must be even, got ${options.headDim}`);
  if (!(options.theta > 0)) {
    throw new ParallelError('INVALID_ARGUMENT', `rope: theta must be positive, got ${options.theta}`, {
      where: op,
    });
  }
  const { rows, cols } = lastDimRows(op, x);
  if (cols % options.headDim !== 0) {
    throw shapeError(op, `rows of ${cols} values of '${x.label}' are not whole heads of ${options.headDim}`);
  }
  if (positions.size !== rows) {
    throw shapeError(
      op,
      `'${positions.label}' holds ${positions.size} positions for ${rows} rows of '${x.label}'`,
    );
  }
  return { rows, cols, headDim: options.headDim };
}

export interface CausalSoftmaxDims {
  readonly rows: number;
  readonly keys: number;
  readonly queries: number;
  readonly offset: number;
  readonly scale: number;
}

export function causalSoftmaxDims(x: Tensor, options: CausalSoftmaxOptions): CausalSoftmaxDims {
  const op = 'causalSoftmax';
  checkDType(op, x, 'f32');
  const { rows, cols } = lastDimRows(op, x);
  positiveInteger(op, 'queries', options.queries);
  const offset = options.offset ?? 0;
  positiveInteger(op, 'offset', offset, 0);
  if (rows % options.queries !== 0) {
    throw shapeError(op, `${rows} rows of '${x.label}' are not blocks of ${options.queries} queries`);
  }
  if (offset + options.queries > cols) {
    throw shapeError(
      op,
      `the last query (position ${offset + options.queries - 1}) needs ${offset + options.queries} keys, '${x.label}' has ${cols}`,
    );
  }
  return { rows, keys: cols, queries: options.queries, offset, scale: options.scale ?? 1 };
}

export function transpose01Dims(x: Tensor): { a: number; b: number; c: number } {
  if (x.shape.length !== 3) {
    throw shapeError('transpose01', `'${x.label}' must be 3-D [A, B, C], got ${formatShape(x.shape)}`);
  }
  const [a, b, c] = x.shape as [number, number, number];
  return { a, b, c };
}

/** A dim of x as [outer, dim, inner]: slices and concats copy `outer` runs of contiguous elements. */
export function splitAround(
  op: string,
  x: Tensor,
  dim: number,
): { outer: number; size: number; inner: number } {
  if (!Number.isSafeInteger(dim) || dim < 0 || dim >= x.shape.length) {
    throw shapeError(op, `dim ${dim} is not a dim of '${x.label}' ${formatShape(x.shape)}`);
  }
  let outer = 1;
  let inner = 1;
  x.shape.forEach((d, i) => {
    if (i < dim) outer *= d;
    if (i > dim) inner *= d;
  });
  return { outer, size: x.shape[dim]!, inner };
}

export function sliceDims(x: Tensor, dim: number, start: number, length: number) {
  const around = splitAround('slice', x, dim);
  positiveInteger('slice', 'length', length, 0);
  positiveInteger('slice', 'start', start, 0);
  if (start + length > around.size) {
    throw shapeError(
      'slice',
      `[${start}, ${start + length}) is past the ${around.size} of dim ${dim} of '${x.label}'`,
    );
  }
  const shape = x.shape.map((d, i) => (i === dim ? length : d));
  return { ...around, shape };
}

export function concatDims(inputs: readonly Tensor[], dim: number) {
  const first = inputs[0];
  if (!first)
    throw new ParallelError('INVALID_ARGUMENT', 'concat: needs at least one input', { where: 'concat' });
  const { outer, inner } = splitAround('concat', first, dim);
  for (const t of inputs) {
    if (t.dtype !== first.dtype)
      throw new ParallelError('DTYPE', `concat: dtypes differ`, { where: 'concat' });
    const same =
      t.shape.length === first.shape.length && t.shape.every((d, i) => i === dim || d === first.shape[i]);
    if (!same) {
      throw shapeError(
        'concat',
        `'${t.label}' ${formatShape(t.shape)} differs from '${first.label}' ${formatShape(first.shape)} outside dim ${dim}`,
      );
    }
  }
  const sizes = inputs.map((t) => t.shape[dim]!);
  const total = sizes.reduce((s, n) => s + n, 0);
  const shape = first.shape.map((d, i) => (i === dim ? total : d));
  return { outer, inner, sizes, total, shape };
}

export interface CacheWriteDims {
  readonly heads: number;
  readonly capacity: number;
  readonly headDim: number;
  readonly tokens: number;
}

export function writeCacheDims(cache: Tensor, x: Tensor, position: number): CacheWriteDims {
  const op = 'writeCache';
  checkDType(op, cache, 'f32');
  checkDType(op, x, 'f32');
  if (cache.shape.length !== 3) {
    throw shapeError(
      op,
      `cache '${cache.label}' must be [heads, capacity, headDim], got ${formatShape(cache.shape)}`,
    );
  }
  const [heads, capacity, headDim] = cache.shape as [number, number, number];
  const { rows, cols } = lastDimRows(op, x);
  if (cols !== heads * headDim) {
    throw shapeError(op, `rows of '${x.label}' hold ${cols} values, the cache's heads ${heads * headDim}`);
  }
  positiveInteger(op, 'position', position, 0);
  if (position + rows > capacity) {
    throw new ParallelError(
      'MEMORY_BUDGET',
      `${op}: positions ${position}..${position + rows - 1} do not fit the cache '${cache.label}' of ${capacity} positions`,
      { where: op, fix: 'open the KV cache with a larger capacity (max prompt + new tokens)' },
    );
  }
  return { heads, capacity, headDim, tokens: rows };
}
