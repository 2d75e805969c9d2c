import { ParallelError } from '../../errors.js';
import type { HostDevice, HostTensor } from '../../runtime/host-device.js';
import type { Tensor } from '../../runtime/tensor.js';
import type {
  ArgmaxResult,
  BatchedMatmulOptions,
  CausalSoftmaxOptions,
  RopeOptions,
  RouterTopKResult,
} from '../kernels.js';
import { ReferenceKernels } from '../reference/reference-kernels.js';
import { copyRunsRef } from '../reference/transformer-ops.js';
import { addPeriod, checkDType, checkOperands } from '../shape-checks.js';
import {
  argmaxDims,
  batchedMatmulDims,
  causalSoftmaxDims,
  pairShapes,
  rmsNormDims,
  ropeDims,
  routerTopKDims,
  transpose01Dims,
} from '../transformer-checks.js';
import { checkIndexable, F32_INDEX_LIMIT } from './f32-index-limit.js';
import { deinterleaveRows4, flattenRows } from './gpujs-output.js';
import type { KernelCache, KernelSpec } from './kernel-cache.js';
import {
  argmaxColumn,
  batchedMatmulRow,
  batchedMatmulRows4,
  causalSoftmaxRows,
  causalSoftmaxStats,
  mulRow,
  mulSame,
  rmsInverse,
  rmsScaleRows,
  ropeCells,
  routerPick,
  siluCells,
  swigluCells,
} from './transformer-sources.js';

const f32 = (t: Tensor): Float32Array => (t as HostTensor).data as Float32Array;

/** Any tensor as [width, height] cells for an elementwise kernel: the last dim is the width. */
function cellsOf(t: Tensor): readonly [number, number] {
  return [t.shape[t.shape.length - 1]!, t.shape.slice(0, -1).reduce((n, d) => n * d, 1)];
}

/**
 * Below this many rows per batch, batchedMatmul runs one row per thread: four rows per thread would spend
 * most of its work on the padding of a decode step's single query.
 */
const ROWS4_MIN_M = 4;

/**
 * The transformer kernels on gpu.js, for GpuJsKernels to delegate to. The arithmetic (batchedMatmul,
 * rmsNorm, silu, swiglu, mul, rope, causalSoftmax, argmax's search) runs in gpu.js kernels from
 * transformer-sources; the pure data movement (transpose01, slice, concat, writeCache, argmax's gather of
 * the values) is TypedArray copies on the host arrays, which on a backend whose memory is the host's is
 * both exact and the fastest copy there is. Each call records one host-clock span.
 */
export class GpuJsTransformerKernels {
  /**
   * The CPU backend on this same device: gpu.js tensors are host arrays, so its slice, concat and
   * writeCache (TypedArray copies, with its checks and spans) are already the right ones here.
   */
  private readonly hostCopies: ReferenceKernels;

  constructor(
    private readonly device: HostDevice,
    private readonly cache: KernelCache,
  ) {
    this.hostCopies = new ReferenceKernels(device);
  }

  async batchedMatmul(a: Tensor, b: Tensor, options: BatchedMatmulOptions = {}): Promise<Tensor> {
    checkOperands('batchedMatmul', this.device, [a, b]);
    const d = batchedMatmulDims(a, b, options);
    checkIndexable('batchedMatmul', a, b, d.batch * d.m * d.n);
    return this.device.timed('batchedMatmul', async () => {
      const { batch, m, n, k } = d;
      const rows4 = m >= ROWS4_MIN_M;
      const perBatch = rows4 ? Math.ceil(m / 4) : m;
      const bCols = d.transposeB ? k : n;
      const spec: KernelSpec = {
        body: rows4 ? batchedMatmulRows4 : batchedMatmulRow,
        output: [n, batch * perBatch],
        constants: {
          K: k,
          K4: k - (k % 4),
          perBatch,
          lastRow: m - 1,
          aBatch: m * k,
          bBatch: d.bStride * bCols,
          bP: d.transposeB ? 1 : n,
          bX: d.transposeB ? k : 1,
          scale: d.scale,
        },
        ...(rows4 ? { returnType: 'Array(4)' as const } : {}),
      };
      const result = await this.cache.run(spec, [f32(a), f32(b)]);
      const height = batch * perBatch;
      const out = rows4
        ? dropPadding(deinterleaveRows4(result, n, height, 4 * height, 'batchedMatmul'), batch, m, n)
        : flattenRows(result, n, height, 'batchedMatmul');
      return this.device.adopt(out, [batch, m, n], options.label ?? 'batchedMatmul');
    });
  }

  /** Two kernels: per-row 1/rms, then the elementwise scaling by it and by the weight. */
  async rmsNorm(x: Tensor, weight: Tensor, eps: number, label = 'rmsNorm'): Promise<Tensor> {
    checkOperands('rmsNorm', this.device, [x, weight]);
    const { rows, cols } = rmsNormDims(x, weight);
    checkIndexable('rmsNorm', x);
    // Rows of no columns: the per-row statistics would run for an output of nothing.
    if (x.size === 0) return this.device.empty(x.shape, 'f32', label);
    return this.device.timed('rmsNorm', async () => {
      const inv = await this.rows(
        { body: rmsInverse, output: [1, rows], constants: { C: cols, eps } },
        [f32(x)],
        'rmsNorm',
      );
      const spec = { body: rmsScaleRows, output: [cols, rows] as const, constants: { W: cols } };
      return this.device.adopt(await this.rows(spec, [f32(x), inv, f32(weight)], 'rmsNorm'), x.shape, label);
    });
  }

  async silu(x: Tensor, label = 'silu'): Promise<Tensor> {
    checkOperands('silu', this.device, [x]);
    checkDType('silu', x, 'f32');
    checkIndexable('silu', x);
    return this.device.timed('silu', async () => {
      const output = cellsOf(x);
      const spec = { body: siluCells, output, constants: { W: output[0] } };
      return this.device.adopt(await this.rows(spec, [f32(x)], 'silu'), x.shape, label);
    });
  }

  async swiglu(gate: Tensor, up: Tensor, label = 'swiglu'): Promise<Tensor> {
    checkOperands('swiglu', this.device, [gate, up]);
    pairShapes('swiglu', gate, up);
    checkIndexable('swiglu', gate);
    return this.device.timed('swiglu', async () => {
      const output = cellsOf(gate);
      const spec = { body: swigluCells, output, constants: { W: output[0] } };
      return this.device.adopt(await this.rows(spec, [f32(gate), f32(up)], 'swiglu'), gate.shape, label);
    });
  }

  async mul(a: Tensor, b: Tensor, label = 'mul'): Promise<Tensor> {
    checkOperands('mul', this.device, [a, b]);
    const broadcast = addPeriod(a, b) !== a.size;
    checkIndexable('mul', a);
    return this.device.timed('mul', async () => {
      const output = cellsOf(a);
      const spec = { body: broadcast ? mulRow : mulSame, output, constants: { W: output[0] } };
      return this.device.adopt(await this.rows(spec, [f32(a), f32(b)], 'mul'), a.shape, label);
    });
  }

  async rope(x: Tensor, positions: Tensor, options: RopeOptions): Promise<Tensor> {
    checkOperands('rope', this.device, [x, positions]);
    const d = ropeDims(x, positions, options);
    checkIndexable('rope', x);
    return this.device.timed('rope', async () => {
      const positionsF32 = exactPositions((positions as HostTensor).data as Uint32Array);
      const heads = d.cols / d.headDim;
      const spec = {
        body: ropeCells,
        output: [d.headDim, d.rows * heads] as const,
        constants: { headDim: d.headDim, half: d.headDim / 2, heads, theta: options.theta },
      };
      const out = await this.rows(spec, [f32(x), positionsF32], 'rope');
      return this.device.adopt(out, x.shape, options.label ?? 'rope');
    });
  }

  /** Two kernels, as softmax: per-row (max, sum of exp) over the visible keys, then the masked quotient. */
  async causalSoftmax(x: Tensor, options: CausalSoftmaxOptions): Promise<Tensor> {
    checkOperands('causalSoftmax', this.device, [x]);
    const d = causalSoftmaxDims(x, options);
    checkIndexable('causalSoftmax', x);
    return this.device.timed('causalSoftmax', async () => {
      const constants = { keys: d.keys, queries: d.queries, offset: d.offset, scale: d.scale };
      const stats = await this.rows(
        { body: causalSoftmaxStats, output: [2, d.rows], constants },
        [f32(x)],
        'causalSoftmax',
      );
      const spec = { body: causalSoftmaxRows, output: [d.keys, d.rows] as const, constants };
      const out = await this.rows(spec, [f32(x), stats], 'causalSoftmax');
      return this.device.adopt(out, x.shape, options.label ?? 'causalSoftmax');
    });
  }

  async transpose01(x: Tensor, label = 'transpose01'): Promise<Tensor> {
    checkOperands('transpose01', this.device, [x]);
    const { a, b, c } = transpose01Dims(x);
    return this.device.timed('transpose01', () => {
      const out = this.device.empty([b, a, c], x.dtype, label);
      // Block i of x ([B, C], contiguous) becomes column-block i of the output: B runs of C elements.
      for (let i = 0; i < a; i++) {
        copyRunsRef((x as HostTensor).data, out.data, {
          outer: b,
          width: c,
          srcRow: c,
          srcAt: i * b * c,
          dstRow: a * c,
          dstAt: i * c,
        });
      }
      return out;
    });
  }

  /** Host copies, as on the CPU backend: the same host arrays, so its implementation is the exact one. */
  slice(x: Tensor, dim: number, start: number, length: number, label?: string): Promise<Tensor> {
    return this.hostCopies.slice(x, dim, start, length, label);
  }

  concat(inputs: readonly Tensor[], dim: number, label?: string): Promise<Tensor> {
    return this.hostCopies.concat(inputs, dim, label);
  }

  /** The column search is a kernel; the values are then read at those columns (a gather, exact). */
  async argmax(x: Tensor, label = 'argmax'): Promise<ArgmaxResult> {
    checkOperands('argmax', this.device, [x]);
    const { rows, cols } = argmaxDims(x);
    checkIndexable('argmax', x);
    return this.device.timed('argmax', async () => {
      const spec = { body: argmaxColumn, output: [1, rows] as const, constants: { C: cols } };
      const columns = await this.rows(spec, [f32(x)], 'argmax');
      const data = f32(x);
      const indices = new Uint32Array(rows);
      const values = new Float32Array(rows);
      for (let r = 0; r < rows; r++) {
        const column = columns[r]!;
        if (!(Number.isInteger(column) && column >= 0 && column < cols)) {
          throw badColumn(column, cols, 'argmax');
        }
        indices[r] = column;
        values[r] = data[r * cols + column]!;
      }
      return {
        indices: this.device.adopt(indices, [rows], `${label}.indices`),
        values: this.device.adopt(values, [rows], `${label}.values`),
      };
    });
  }

  /**
   * The expert search is a kernel; the k weights are then a softmax over the chosen logits on the host
   * (k values a row, in float64, as argmax reads its values back).
   */
  async routerTopK(logits: Tensor, k: number, label = 'routerTopK'): Promise<RouterTopKResult> {
    checkOperands('routerTopK', this.device, [logits]);
    const { rows, experts } = routerTopKDims(logits, k);
    checkIndexable('routerTopK', logits);
    return this.device.timed('routerTopK', async () => {
      const spec = { body: routerPick, output: [k, rows] as const, constants: { E: experts, K: k } };
      const picks = await this.rows(spec, [f32(logits)], 'routerTopK');
      const data = f32(logits);
      const indices = new Uint32Array(rows * k);
      const weights = new Float32Array(rows * k);
      const exps = new Float64Array(k);
      for (let r = 0; r < rows; r++) {
        let total = 0;
        for (let j = 0; j < k; j++) {
          const e = picks[r * k + j]!;
          if (!(Number.isInteger(e) && e >= 0 && e < experts)) throw badColumn(e, experts, 'routerTopK');
          indices[r * k + j] = e;
          exps[j] = Math.exp(data[r * experts + e]! - data[r * experts + indices[r * k]!]!);
          total += exps[j]!;
        }
        for (let j = 0; j < k; j++) weights[r * k + j] = exps[j]! / total;
      }
      return {
        indices: this.device.adopt(indices, [rows, k], `${label}.indices`),
        weights: this.device.adopt(weights, [rows, k], `${label}.weights`),
      };
    });
  }

  /** In place in the cache's host array, by the CPU backend's copy (see slice). */
  writeCache(cache: Tensor, x: Tensor, position: number): Promise<void> {
    return this.hostCopies.writeCache(cache, x, position);
  }

  private async rows(spec: KernelSpec, args: readonly Float32Array[], op: string): Promise<Float32Array> {
    const [width, height] = spec.output;
    return flattenRows(await this.cache.run(spec, args), width, height, op);
  }
}

/**
 * The four-rows kernel's output, de-interleaved, holds ceil(M/4) * 4 rows per batch; the last block's
 * padding rows are dropped by moving each batch's M rows down (in place: every batch moves towards the front).
 */
function dropPadding(full: Float32Array, batch: number, m: number, n: number): Float32Array {
  const padded = Math.ceil(m / 4) * 4;
  if (padded === m) return full;
  for (let z = 1; z < batch; z++) full.copyWithin(z * m * n, z * padded * n, (z * padded + m) * n);
  // A copy, not a subarray: the tensor's ledger entry is its array's bytes, which must be all it holds.
  return full.slice(0, batch * m * n);
}

/** Positions as the f32 array a gpu.js kernel reads: exact only below 2^24, refused above. */
function exactPositions(positions: Uint32Array): Float32Array {
  const out = new Float32Array(positions.length);
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i]!;
    if (p >= F32_INDEX_LIMIT) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `rope: position ${p} cannot be held exactly by gpu.js (f32)`,
        {
          where: 'gpujs rope',
          fix: 'positions must stay below 16777216 on the gpu.js backend; use the webgpu backend',
        },
      );
    }
    out[i] = p;
  }
  return out;
}

function badColumn(column: number, cols: number, op: string): ParallelError {
  return new ParallelError('BACKEND', `${op}: gpu.js returned column ${column} for rows of ${cols}`, {
    where: `gpujs ${op}`,
    fix: 'use the gpu.js version in package.json (2.24)',
  });
}
