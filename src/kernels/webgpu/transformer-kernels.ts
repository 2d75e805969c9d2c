import type { DType, Shape, Tensor } from '../../runtime/tensor.js';
import type { GpuDevice } from '../../runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../../runtime/webgpu/gpu-tensor.js';
import type {
  AddRmsNormResult,
  ArgmaxResult,
  BatchedMatmulOptions,
  CausalSoftmaxOptions,
  RopeOptions,
  RouterTopKResult,
} from '../kernels.js';
import { addPeriod, checkDType, checkOperands } from '../shape-checks.js';
import {
  addRmsNormDims,
  argmaxDims,
  type BatchedMatmulDims,
  batchedMatmulDims,
  causalSoftmaxDims,
  concatDims,
  pairShapes,
  rmsNormDims,
  ropeDims,
  routerTopKDims,
  sliceDims,
  transpose01Dims,
  writeCacheDims,
} from '../transformer-checks.js';
import { grid1d } from './grid.js';
import { params } from './params.js';
import { loadShader, specialize } from './shader-source.js';

const buf = (t: Tensor): GPUBuffer => (t as GpuTensor).buffer;

const ELEMENTWISE_WORKGROUP = 256;
const ROW_WORKGROUP = 64;

interface Kernel {
  /** The shader file (without .wgsl) and its entry point (default main). */
  readonly file: string;
  readonly entryPoint?: string;
  /** Names the kernel and every variant parameter. */
  readonly key: string;
  /** Values for the shader's template (see `specialize`); none when the file has no template. */
  readonly template?: Readonly<Record<string, number>>;
  readonly constants: Record<string, number>;
  readonly uniform: ArrayBuffer;
  readonly workgroups: readonly [number, number?, number?];
}

interface Runs {
  readonly outer: number;
  readonly groups?: number;
  readonly width: number;
  readonly srcRow: number;
  readonly srcGroup?: number;
  readonly srcAt: number;
  readonly dstRow: number;
  readonly dstGroup?: number;
  readonly dstAt: number;
}

/** The WebGPU transformer kernels (see Kernels); WebGpuKernels delegates to these. */
export class WebGpuTransformerKernels {
  constructor(private readonly device: GpuDevice) {}

  async batchedMatmul(a: Tensor, b: Tensor, options: BatchedMatmulOptions = {}): Promise<Tensor> {
    checkOperands('batchedMatmul', this.device, [a, b]);
    const d = batchedMatmulDims(a, b, options);
    // A sum over K = 0 is zeros, and its empty operands cannot be bound (other empty shapes: no workgroups).
    if (d.k === 0) return this.device.empty([d.batch, d.m, d.n], 'f32', options.label ?? 'batchedMatmul');
    const bCols = d.transposeB ? d.k : d.n;
    const v = batchedMatmulVariant(d);
    return this.single(
      {
        file: 'batched_matmul',
        key: v.key,
        template: v.template,
        constants: { WX: v.wx, WY: v.wy },
        uniform: params([
          ['u32', d.m],
          ['u32', d.n],
          ['u32', d.k],
          ['u32', d.bStride * bCols],
          ['f32', d.scale],
        ]),
        workgroups: [Math.ceil(d.n / (v.wx * v.cols)), Math.ceil(d.m / (v.wy * v.rows)), d.batch],
      },
      [a, b],
      [d.batch, d.m, d.n],
      'f32',
      options.label ?? 'batchedMatmul',
    );
  }

  async rmsNorm(x: Tensor, weight: Tensor, eps: number, label = 'rmsNorm'): Promise<Tensor> {
    checkOperands('rmsNorm', this.device, [x, weight]);
    const { rows, cols } = rmsNormDims(x, weight);
    return this.single(rmsNormKernel(rows, cols, eps, false), [x, weight], x.shape, 'f32', label);
  }

  /** rms_norm.wgsl with RESIDUAL: both outputs from one dispatch (see the shader). */
  async addRmsNorm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
    label = 'addRmsNorm',
  ): Promise<AddRmsNormResult> {
    checkOperands('addRmsNorm', this.device, [x, residual, weight]);
    const { rows, cols } = addRmsNormDims(x, residual, weight);
    const normed = this.device.empty(x.shape, 'f32', label, { overwritten: true });
    let sum: GpuTensor | undefined;
    try {
      sum = this.device.empty(x.shape, 'f32', `${label}.sum`, { overwritten: true });
      if (x.size > 0) {
        await this.dispatch(rmsNormKernel(rows, cols, eps, true), [
          buf(x),
          buf(residual),
          buf(weight),
          normed.buffer,
          sum.buffer,
        ]);
      }
    } catch (error) {
      normed.free();
      sum?.free();
      throw error;
    }
    return { sum, normed };
  }

  async silu(x: Tensor, label = 'silu'): Promise<Tensor> {
    checkOperands('silu', this.device, [x]);
    checkDType('silu', x, 'f32');
    return this.single(
      elementwise('silu', 'main', x.size, params([['u32', x.size]])),
      [x],
      x.shape,
      'f32',
      label,
    );
  }

  async swiglu(gate: Tensor, up: Tensor, label = 'swiglu'): Promise<Tensor> {
    checkOperands('swiglu', this.device, [gate, up]);
    pairShapes('swiglu', gate, up);
    return this.single(
      elementwise(
        'gated',
        'swiglu',
        gate.size,
        params([
          ['u32', gate.size],
          ['u32', gate.size],
        ]),
      ),
      [gate, up],
      gate.shape,
      'f32',
      label,
    );
  }

  async mul(a: Tensor, b: Tensor, label = 'mul'): Promise<Tensor> {
    checkOperands('mul', this.device, [a, b]);
    const period = addPeriod(a, b);
    return this.single(
      elementwise(
        'gated',
        'mul',
        a.size,
        params([
          ['u32', a.size],
          ['u32', period],
        ]),
      ),
      [a, b],
      a.shape,
      'f32',
      label,
    );
  }

  async rope(x: Tensor, positions: Tensor, options: RopeOptions): Promise<Tensor> {
    checkOperands('rope', this.device, [x, positions]);
    const d = ropeDims(x, positions, options);
    const pairs = (d.rows * d.cols) / 2;
    return this.single(
      elementwise(
        'rope',
        'main',
        pairs,
        params([
          ['u32', d.rows],
          ['u32', d.cols],
          ['u32', d.headDim],
          ['f32', options.theta],
        ]),
      ),
      [x, positions],
      x.shape,
      'f32',
      options.label ?? 'rope',
    );
  }

  async causalSoftmax(x: Tensor, options: CausalSoftmaxOptions): Promise<Tensor> {
    checkOperands('causalSoftmax', this.device, [x]);
    const d = causalSoftmaxDims(x, options);
    return this.single(
      rowKernel(
        'causal_softmax',
        d.rows,
        params([
          ['u32', d.rows],
          ['u32', d.keys],
          ['u32', d.queries],
          ['u32', d.offset],
          ['f32', d.scale],
        ]),
      ),
      [x],
      x.shape,
      'f32',
      options.label ?? 'causalSoftmax',
    );
  }

  async transpose01(x: Tensor, label = 'transpose01'): Promise<Tensor> {
    checkOperands('transpose01', this.device, [x]);
    const { a, b, c } = transpose01Dims(x);
    return this.single(
      elementwise(
        'transpose01',
        'main',
        x.size,
        params([
          ['u32', a],
          ['u32', b],
          ['u32', c],
        ]),
      ),
      [x],
      [b, a, c],
      x.dtype,
      label,
    );
  }

  async slice(x: Tensor, dim: number, start: number, length: number, label = 'slice'): Promise<Tensor> {
    checkOperands('slice', this.device, [x]);
    const d = sliceDims(x, dim, start, length);
    const out = this.device.empty(d.shape, x.dtype, label, { overwritten: true });
    const width = length * d.inner;
    try {
      await this.copyRuns(buf(x), out.buffer, {
        outer: d.outer,
        width,
        srcRow: d.size * d.inner,
        srcAt: start * d.inner,
        dstRow: width,
        dstAt: 0,
      });
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }

  async concat(inputs: readonly Tensor[], dim: number, label = 'concat'): Promise<Tensor> {
    checkOperands('concat', this.device, inputs);
    const d = concatDims(inputs, dim);
    // Written in full: the inputs' runs tile every row of the output.
    const out = this.device.empty(d.shape, inputs[0]!.dtype, label, { overwritten: true });
    try {
      let at = 0;
      for (const [i, t] of inputs.entries()) {
        const width = d.sizes[i]! * d.inner;
        await this.copyRuns(buf(t), out.buffer, {
          outer: d.outer,
          width,
          srcRow: width,
          srcAt: 0,
          dstRow: d.total * d.inner,
          dstAt: at,
        });
        at += width;
      }
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }

  async argmax(x: Tensor, label = 'argmax'): Promise<ArgmaxResult> {
    checkOperands('argmax', this.device, [x]);
    const { rows, cols } = argmaxDims(x);
    const indices = this.device.empty([rows], 'u32', `${label}.indices`, { overwritten: true });
    let values: GpuTensor | undefined;
    try {
      values = this.device.empty([rows], 'f32', `${label}.values`, { overwritten: true });
      await this.dispatch(
        rowKernel(
          'argmax',
          rows,
          params([
            ['u32', rows],
            ['u32', cols],
          ]),
        ),
        [buf(x), indices.buffer, values.buffer],
      );
    } catch (error) {
      indices.free();
      values?.free();
      throw error;
    }
    return { indices, values };
  }

  async routerTopK(logits: Tensor, k: number, label = 'routerTopK'): Promise<RouterTopKResult> {
    checkOperands('routerTopK', this.device, [logits]);
    const { rows, experts } = routerTopKDims(logits, k);
    const indices = this.device.empty([rows, k], 'u32', `${label}.indices`, { overwritten: true });
    let weights: GpuTensor | undefined;
    try {
      weights = this.device.empty([rows, k], 'f32', `${label}.weights`, { overwritten: true });
      await this.dispatch(
        {
          file: 'router_topk',
          key: `router_topk/wg${ROW_WORKGROUP}`,
          constants: { WORKGROUP_SIZE: ROW_WORKGROUP },
          uniform: params([
            ['u32', rows],
            ['u32', experts],
            ['u32', k],
          ]),
          workgroups: grid1d(rows, ROW_WORKGROUP),
        },
        [buf(logits), indices.buffer, weights.buffer],
      );
    } catch (error) {
      indices.free();
      weights?.free();
      throw error;
    }
    return { indices, weights };
  }

  async writeCache(cache: Tensor, x: Tensor, position: number): Promise<void> {
    checkOperands('writeCache', this.device, [cache, x]);
    const d = writeCacheDims(cache, x, position);
    // Run t, group h: x[t, h * headDim ..] -> cache[h, position + t, ..], in place in the cache's buffer.
    await this.copyRuns(buf(x), buf(cache), {
      outer: d.tokens,
      groups: d.heads,
      width: d.headDim,
      srcRow: d.heads * d.headDim,
      srcGroup: d.headDim,
      srcAt: 0,
      dstRow: d.headDim,
      dstGroup: d.capacity * d.headDim,
      dstAt: position * d.headDim,
    });
  }

  private copyRuns(src: GPUBuffer, dst: GPUBuffer, runs: Runs): Promise<void> {
    const groups = runs.groups ?? 1;
    return this.dispatch(
      elementwise(
        'copy_runs',
        'main',
        runs.outer * groups * runs.width,
        params([
          ['u32', runs.outer],
          ['u32', groups],
          ['u32', runs.width],
          ['u32', runs.srcRow],
          ['u32', runs.srcGroup ?? 0],
          ['u32', runs.srcAt],
          ['u32', runs.dstRow],
          ['u32', runs.dstGroup ?? 0],
          ['u32', runs.dstAt],
        ]),
      ),
      [src, dst],
    );
  }

  /** Allocates one output, written in full by the kernel, bound after the inputs. */
  private async single(
    kernel: Kernel,
    inputs: readonly Tensor[],
    shape: Shape,
    dtype: DType,
    label: string,
  ): Promise<Tensor> {
    const out = this.device.empty(shape, dtype, label, { overwritten: true });
    // Nothing to write (rows of no columns still make a grid of rows): see GpuDevice.dispatch for the rest.
    if (out.size === 0) return out;
    try {
      await this.dispatch(kernel, [...inputs.map(buf), out.buffer]);
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }

  private dispatch(kernel: Kernel, buffers: readonly GPUBuffer[]): Promise<void> {
    return this.device.dispatch({
      source: {
        key: kernel.key,
        code: () => {
          const code = loadShader(kernel.file);
          return kernel.template ? specialize(kernel.file, code, kernel.template) : code;
        },
        constants: kernel.constants,
        entryPoint: kernel.entryPoint ?? 'main',
      },
      params: kernel.uniform,
      buffers,
      workgroups: kernel.workgroups,
    });
  }
}

interface MatmulVariant {
  readonly key: string;
  readonly template: Readonly<Record<string, number>>;
  /** Output rows and columns per invocation. */
  readonly rows: number;
  readonly cols: number;
  readonly wx: number;
  readonly wy: number;
}

/**
 * The batched matmul's tile for a shape. Decode (m < 4: one query per head) gets one row per invocation and
 * a flat workgroup, so no lane repeats the single row's loads; otherwise 4 × 8 blocks in an 8 × 8 workgroup
 * (on lavapipe, [8,128,128]·[8,128,64]: ~2.5 ms against ~3.5 ms for 4 × 4 and ~14 ms for one output a lane).
 */
export function batchedMatmulVariant(d: BatchedMatmulDims): MatmulVariant {
  const rows = d.m < 4 ? 1 : 4;
  const [wx, wy] = rows === 1 ? [64, 1] : [8, 8];
  const tb = d.transposeB ? 1 : 0;
  const vec = (d.transposeB ? d.k : d.n) % 4 === 0 ? 1 : 0;
  const cols = 8;
  const template: Record<string, number> = d.transposeB
    ? { TB: tb, TM: rows, TN: cols, VEC: vec }
    : { TB: tb, TM: rows, TN4: cols / 4, VEC: vec };
  return {
    key: `batched_matmul/tb${tb}/tm${rows}/tn${cols}/vec${vec}/wg${wx}x${wy}`,
    template,
    rows,
    cols,
    wx,
    wy,
  };
}

/** One invocation per item, a 1-D index over a 2-D grid. */
function elementwise(file: string, entryPoint: string, items: number, uniform: ArrayBuffer): Kernel {
  const name = entryPoint === 'main' ? file : `${file}.${entryPoint}`;
  return {
    file,
    entryPoint,
    key: `${name}/wg${ELEMENTWISE_WORKGROUP}`,
    constants: { WORKGROUP_SIZE: ELEMENTWISE_WORKGROUP },
    uniform,
    workgroups: grid1d(items, ELEMENTWISE_WORKGROUP),
  };
}

/** rms_norm.wgsl, plain or with the residual add fused in (the key names which). */
function rmsNormKernel(rows: number, cols: number, eps: number, residual: boolean): Kernel {
  const plain = rowKernel(
    'rms_norm',
    rows,
    params([
      ['u32', rows],
      ['u32', cols],
      ['f32', eps],
    ]),
  );
  return {
    ...plain,
    key: residual ? `add_rms_norm/wg${ROW_WORKGROUP}` : plain.key,
    template: { RESIDUAL: residual ? 1 : 0 },
  };
}

/** One workgroup per row, reducing in workgroup memory. */
function rowKernel(file: string, rows: number, uniform: ArrayBuffer): Kernel {
  return {
    file,
    key: `${file}/wg${ROW_WORKGROUP}`,
    constants: { WORKGROUP_SIZE: ROW_WORKGROUP },
    uniform,
    workgroups: grid1d(rows, 1),
  };
}
