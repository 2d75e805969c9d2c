import { ParallelError } from '../../errors.js';

/**
 * gpu.js returns a 2-D output as an Array(height) of Float32Array rows. On webasm the rows are subarrays of
 * one fresh buffer, so the flat result is a view of it, without a copy; on cpu mode every row has its own
 * buffer and is copied. Anything else is a gpu.js change this backend does not know: a typed error.
 */
export function flattenRows(result: unknown, width: number, height: number, op: string): Float32Array {
  // An output of no cells was never run (see KernelCache.run).
  if (width === 0 || height === 0) return new Float32Array(0);
  const rows = asRows(result, height, op);
  const first = rows[0];
  const view = contiguousView(first, width * height);
  if (view && isSubarrayAt(rows[height - 1], view, (height - 1) * width)) return view;
  const out = new Float32Array(width * height);
  rows.forEach((row, y) => {
    out.set(asRow(row, width, op), y * width);
  });
  return out;
}

/**
 * The matmul's output: [width, height] cells of 4 values, cell (x, y) holding C[4y + c][x]. Returns C as
 * [rows, width] row-major (rows <= 4 * height: the padding rows of the last block are dropped).
 */
export function deinterleaveRows4(
  result: unknown,
  width: number,
  height: number,
  rows: number,
  op: string,
): Float32Array {
  if (width === 0 || height === 0) return new Float32Array(rows * width);
  const packed = packedCells(result, width, height, op);
  const out = new Float32Array(rows * width);
  for (let y = 0; y < height; y++) {
    for (let c = 0; c < 4; c++) {
      const row = 4 * y + c;
      if (row >= rows) break;
      const dst = row * width;
      let src = y * width * 4 + c;
      for (let x = 0; x < width; x++, src += 4) out[dst + x] = packed[src]!;
    }
  }
  return out;
}

/** The cells of an Array(4) output as one flat array (a view on webasm, a copy elsewhere). */
function packedCells(result: unknown, width: number, height: number, op: string): Float32Array {
  const rows = asRows(result, height, op);
  const firstRow = rows[0];
  if (!Array.isArray(firstRow) || firstRow.length !== width) throw badOutput(op);
  const first = firstRow[0] as unknown;
  const lastRow = rows[height - 1] as unknown[];
  if (first instanceof Float32Array) {
    const view = contiguousView(first, width * height * 4);
    if (view && isSubarrayAt(lastRow[width - 1], first, (height * width - 1) * 4)) return view;
  }
  const out = new Float32Array(width * height * 4);
  rows.forEach((row, y) => {
    (row as ArrayLike<number>[]).forEach((cell, x) => {
      for (let c = 0; c < 4; c++) out[(y * width + x) * 4 + c] = cell[c]!;
    });
  });
  return out;
}

function asRows(result: unknown, height: number, op: string): unknown[] {
  if (!Array.isArray(result) || result.length !== height || result.length === 0) throw badOutput(op);
  return result;
}

function asRow(row: unknown, width: number, op: string): ArrayLike<number> {
  if (!(row instanceof Float32Array || Array.isArray(row)) || row.length !== width) throw badOutput(op);
  return row as ArrayLike<number>;
}

function contiguousView(first: unknown, length: number): Float32Array | undefined {
  if (!(first instanceof Float32Array)) return undefined;
  if (first.byteOffset + length * 4 > first.buffer.byteLength) return undefined;
  return new Float32Array(first.buffer, first.byteOffset, length);
}

function isSubarrayAt(candidate: unknown, first: Float32Array, elementOffset: number): boolean {
  return (
    candidate instanceof Float32Array &&
    candidate.buffer === first.buffer &&
    candidate.byteOffset === first.byteOffset + elementOffset * 4
  );
}

function badOutput(op: string): ParallelError {
  return new ParallelError('BACKEND', `${op}: gpu.js returned an output of an unexpected form`, {
    where: `gpujs ${op}`,
    fix: 'use the gpu.js version in package.json (2.24)',
  });
}
