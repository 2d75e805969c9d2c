import { ParallelError } from '../errors.js';
import type { Device } from '../runtime/device.js';
import { type DType, formatShape, type Tensor } from '../runtime/tensor.js';

/** Every backend checks operands here, so the same mistake gives the same error everywhere. */

export function checkOperands(op: string, device: Device, operands: readonly Tensor[]): void {
  for (const t of operands) {
    t.assertLive(op);
    if (t.device !== device) {
      throw new ParallelError(
        'DEVICE_MISMATCH',
        `${op}: '${t.label}' lives on ${t.device.name}, but the kernel runs on ${device.name}`,
        { where: op, fix: 'move the tensor with a collective (send/recv, broadcast) first' },
      );
    }
  }
}

export function checkDType(op: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) {
    throw new ParallelError('DTYPE', `${op}: '${t.label}' must be ${dtype}, got ${t.dtype}`, { where: op });
  }
}

export function asMatrix(op: string, t: Tensor): { rows: number; cols: number } {
  if (t.shape.length === 1) return { rows: 1, cols: t.shape[0]! };
  if (t.shape.length !== 2) {
    throw new ParallelError(
      'SHAPE',
      `${op}: '${t.label}' must be a matrix, got shape ${formatShape(t.shape)}`,
      {
        where: op,
      },
    );
  }
  return { rows: t.shape[0]!, cols: t.shape[1]! };
}

export interface MatmulDims {
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

export function matmulDims(a: Tensor, b: Tensor, bias?: Tensor): MatmulDims {
  const A = asMatrix('matmul', a);
  const B = asMatrix('matmul', b);
  checkDType('matmul', a, 'f32');
  checkDType('matmul', b, 'f32');
  if (A.cols !== B.rows) {
    throw new ParallelError(
      'SHAPE',
      `matmul: inner dimensions differ: '${a.label}' ${formatShape(a.shape)} · '${b.label}' ${formatShape(b.shape)}`,
      { where: 'matmul', fix: 'A must be [M, K] and B [K, N]' },
    );
  }
  if (bias && (bias.size !== B.cols || bias.dtype !== 'f32')) {
    throw new ParallelError(
      'SHAPE',
      `matmul: bias '${bias.label}' must hold ${B.cols} f32 values, got ${formatShape(bias.shape)}`,
      {
        where: 'matmul',
      },
    );
  }
  return { m: A.rows, n: B.cols, k: A.cols };
}

/** swigluMatmul: x · wGate's dims, with wUp of wGate's shape. */
export function swigluMatmulDims(x: Tensor, wGate: Tensor, wUp: Tensor): MatmulDims {
  const dims = matmulDims(x, wGate);
  checkDType('swigluMatmul', wUp, 'f32');
  sameShape('swigluMatmul', wGate, wUp);
  return dims;
}

/** Every tensor a matmul reads: a, b, and the bias and residual where given. */
export function matmulOperands(
  a: Tensor,
  b: Tensor,
  options: { readonly bias?: Tensor; readonly residual?: Tensor },
): Tensor[] {
  return [a, b, ...(options.bias ? [options.bias] : []), ...(options.residual ? [options.residual] : [])];
}

/** matmul's residual: f32 of the product's shape [M, N]. */
export function checkResidual(dims: MatmulDims, residual: Tensor | undefined): void {
  if (!residual) return;
  checkDType('matmul', residual, 'f32');
  if (residual.shape.length !== 2 || residual.shape[0] !== dims.m || residual.shape[1] !== dims.n) {
    throw new ParallelError(
      'SHAPE',
      `matmul: residual '${residual.label}' must be [${dims.m}, ${dims.n}], got ${formatShape(residual.shape)}`,
      { where: 'matmul' },
    );
  }
}

export function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ParallelError(
      'SHAPE',
      `${op}: shapes differ: '${a.label}' ${formatShape(a.shape)} and '${b.label}' ${formatShape(b.shape)}`,
      { where: op },
    );
  }
}

/** add: same shape, or b is a row vector [cols] broadcast over a's rows. Returns the broadcast period. */
export function addPeriod(a: Tensor, b: Tensor): number {
  checkDType('add', a, 'f32');
  checkDType('add', b, 'f32');
  const A = asMatrix('add', a);
  if (b.size === A.cols && (b.shape.length === 1 || (b.shape.length === 2 && b.shape[0] === 1)))
    return A.cols;
  if (a.size === b.size) {
    sameShape('add', a, b);
    return a.size;
  }
  throw new ParallelError(
    'SHAPE',
    `add: '${b.label}' ${formatShape(b.shape)} neither matches '${a.label}' ${formatShape(a.shape)} nor broadcasts over its rows`,
    { where: 'add' },
  );
}

export function groupRows(
  x: Tensor,
  rowsPerGroup: number | undefined,
): { groups: number; rowsPerGroup: number; cols: number } {
  const X = asMatrix('meanRows', x);
  const per = rowsPerGroup ?? X.rows;
  if (per === 0 && rowsPerGroup === undefined) {
    // The mean of no rows is undefined (0/0); groups of a given size over no rows are simply none.
    throw new ParallelError('SHAPE', `meanRows: '${x.label}' has no rows to average`, {
      where: 'meanRows',
      fix: 'pass rowsPerGroup: zero rows then give zero groups, [0, cols]',
    });
  }
  if (!Number.isSafeInteger(per) || per <= 0 || X.rows % per !== 0) {
    throw new ParallelError(
      'SHAPE',
      `meanRows: ${X.rows} rows of '${x.label}' do not split into groups of ${per}`,
      {
        where: 'meanRows',
      },
    );
  }
  return { groups: X.rows / per, rowsPerGroup: per, cols: X.cols };
}

export function layerNormDims(x: Tensor, gamma: Tensor, beta: Tensor): { rows: number; cols: number } {
  const X = asMatrix('layerNorm', x);
  for (const p of [gamma, beta]) {
    if (p.size !== X.cols) {
      throw new ParallelError(
        'SHAPE',
        `layerNorm: '${p.label}' must hold ${X.cols} values, got ${formatShape(p.shape)}`,
        {
          where: 'layerNorm',
        },
      );
    }
  }
  return X;
}

export function embeddingDims(
  table: Tensor,
  ids: Tensor,
): { vocabRows: number; hidden: number; tokens: number } {
  const T = asMatrix('embedding', table);
  checkDType('embedding', ids, 'u32');
  checkDType('embedding', table, 'f32');
  return { vocabRows: T.rows, hidden: T.cols, tokens: ids.size };
}

export function sumInputs(inputs: readonly Tensor[]): Tensor {
  const first = inputs[0];
  if (!first) throw new ParallelError('INVALID_ARGUMENT', 'sum: needs at least one input', { where: 'sum' });
  for (const t of inputs) {
    checkDType('sum', t, 'f32');
    sameShape('sum', first, t);
  }
  return first;
}
