import { ParallelError } from '../../errors.js';
import { TensorScope } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { GpuDevice } from '../../runtime/webgpu/gpu-device.js';
import type { GpuTensor } from '../../runtime/webgpu/gpu-tensor.js';
import {
  type AddRmsNormResult,
  type ArgmaxResult,
  type BatchedMatmulOptions,
  type CausalSoftmaxOptions,
  DEFAULT_LAYER_NORM_EPS,
  type EmbeddingOptions,
  type Kernels,
  type MatmulOptions,
  type RopeOptions,
  type RouterTopKResult,
} from '../kernels.js';
import {
  addPeriod,
  asMatrix,
  checkOperands,
  checkResidual,
  embeddingDims,
  groupRows,
  layerNormDims,
  type MatmulDims,
  matmulDims,
  matmulOperands,
  sumInputs,
  swigluMatmulDims,
} from '../shape-checks.js';
import { grid1d } from './grid.js';
import type { MatmulPlanner } from './matmul-planner.js';
import { params } from './params.js';
import { loadShader, specialize } from './shader-source.js';
import { WebGpuTransformerKernels } from './transformer-kernels.js';

const buf = (t: Tensor): GPUBuffer => (t as GpuTensor).buffer;

const ELEMENTWISE_WORKGROUP = 256;
const ROW_WORKGROUP = 64;

/** The WebGPU backend's kernels: WGSL from shaders/, pipelines cached per device by variant key. */
export class WebGpuKernels implements Kernels {
  private readonly transformer: WebGpuTransformerKernels;

  constructor(
    private readonly device: GpuDevice,
    readonly matmuls: MatmulPlanner,
  ) {
    this.transformer = new WebGpuTransformerKernels(device);
  }

  async matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
    checkOperands('matmul', this.device, matmulOperands(a, b, options));
    const dims = matmulDims(a, b, options.bias);
    checkResidual(dims, options.residual);
    const nothing = dims.k === 0 && dims.m * dims.n > 0;
    if (nothing && (options.bias || options.residual)) return this.matmulOverNothing(dims, options);
    // Zeros: an empty product, or a sum over K = 0 without a bias (every activation maps 0 to 0). Otherwise
    // every variant stores every element, so a reused buffer needs no clear first.
    const out = this.device.empty([dims.m, dims.n], 'f32', options.label ?? 'matmul', {
      overwritten: dims.k > 0,
    });
    if (out.size === 0 || dims.k === 0) return out;
    try {
      await this.matmuls.encode(this.device, dims, {
        a: buf(a),
        b: buf(b),
        out: out.buffer,
        bias: options.bias ? buf(options.bias) : undefined,
        residual: options.residual ? buf(options.residual) : undefined,
        activation: options.activation ?? 'none',
        variant: options.variant,
      });
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }

  /**
   * act(bias) + residual on every row: a sum over K = 0 with a bias or a residual. The kernel cannot bind operands with no elements,
   * so it multiplies zeros of K = 1 instead, which gives the same values through the same activation code.
   */
  private async matmulOverNothing(dims: MatmulDims, options: MatmulOptions): Promise<Tensor> {
    const a = this.device.empty([dims.m, 1], 'f32', 'matmul/zeros-a');
    const b = this.device.empty([1, dims.n], 'f32', 'matmul/zeros-b');
    try {
      return await this.matmul(a, b, options);
    } finally {
      a.free();
      b.free();
    }
  }

  async embedding(table: Tensor, ids: Tensor, options: EmbeddingOptions = {}): Promise<Tensor> {
    checkOperands('embedding', this.device, [table, ids]);
    const { vocabRows, hidden, tokens } = embeddingDims(table, ids);
    const rowOffset = options.rowOffset ?? 0;
    if (!Number.isSafeInteger(rowOffset) || rowOffset < 0) {
      throw new ParallelError(
        'INVALID_ARGUMENT',
        `embedding: rowOffset must be a non-negative integer, got ${rowOffset}`,
      );
    }
    // A table of no rows holds none of the ids: zero rows for every token, with no table to bind.
    if (table.size === 0) return this.device.empty([tokens, hidden], 'f32', options.label ?? 'embedding');
    return this.run(
      'embedding',
      [tokens, hidden],
      options.label ?? 'embedding',
      params([
        ['u32', tokens],
        ['u32', hidden],
        ['u32', vocabRows],
        ['u32', rowOffset],
      ]),
      [buf(table), buf(ids)],
      grid1d(tokens * hidden, 64),
      { WORKGROUP_SIZE: 64 },
    );
  }

  async add(a: Tensor, b: Tensor, label = 'add'): Promise<Tensor> {
    checkOperands('add', this.device, [a, b]);
    const period = addPeriod(a, b);
    return this.run(
      'add',
      a.shape,
      label,
      params([
        ['u32', a.size],
        ['u32', period],
      ]),
      [buf(a), buf(b)],
      grid1d(a.size, ELEMENTWISE_WORKGROUP),
      { WORKGROUP_SIZE: ELEMENTWISE_WORKGROUP },
    );
  }

  async scale(a: Tensor, factor: number, label = 'scale'): Promise<Tensor> {
    checkOperands('scale', this.device, [a]);
    return this.run(
      'scale',
      a.shape,
      label,
      params([
        ['u32', a.size],
        ['f32', factor],
      ]),
      [buf(a)],
      grid1d(a.size, ELEMENTWISE_WORKGROUP),
      { WORKGROUP_SIZE: ELEMENTWISE_WORKGROUP },
    );
  }

  /** Sums up to four inputs per pass; longer lists fold the running total into the next pass. */
  async sum(inputs: readonly Tensor[], label = 'sum'): Promise<Tensor> {
    checkOperands('sum', this.device, inputs);
    const first = sumInputs(inputs);
    if (inputs.length === 1) return this.scale(first, 1, label);
    let acc: Tensor | undefined;
    const rest = [...inputs];
    while (rest.length > 0) {
      const take = acc ? rest.splice(0, 3) : rest.splice(0, 4);
      const operands = acc ? [acc, ...take] : take;
      if (operands.length === 1) break;
      const k = operands.length;
      const next = this.device.empty(first.shape, 'f32', label, { overwritten: true });
      try {
        await this.device.dispatch({
          source: {
            key: `sum${k}/wg${ELEMENTWISE_WORKGROUP}`,
            code: () => specialize('sum', loadShader('sum'), { IN2: k >= 3 ? 1 : 0, IN3: k >= 4 ? 1 : 0 }),
            constants: { WORKGROUP_SIZE: ELEMENTWISE_WORKGROUP },
          },
          params: params([['u32', first.size]]),
          buffers: [next.buffer, ...operands.map(buf)],
          workgroups: grid1d(first.size, ELEMENTWISE_WORKGROUP),
        });
      } catch (error) {
        next.free();
        throw error;
      }
      acc?.free();
      acc = next;
    }
    return acc!;
  }

  async meanRows(x: Tensor, rowsPerGroup?: number, label = 'meanRows'): Promise<Tensor> {
    checkOperands('meanRows', this.device, [x]);
    const g = groupRows(x, rowsPerGroup);
    return this.run(
      'mean_rows',
      [g.groups, g.cols],
      label,
      params([
        ['u32', g.groups],
        ['u32', g.rowsPerGroup],
        ['u32', g.cols],
      ]),
      [buf(x)],
      grid1d(g.groups * g.cols, 64),
      { WORKGROUP_SIZE: 64 },
    );
  }

  async layerNorm(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps = DEFAULT_LAYER_NORM_EPS,
    label = 'layerNorm',
  ): Promise<Tensor> {
    checkOperands('layerNorm', this.device, [x, gamma, beta]);
    const { rows, cols } = layerNormDims(x, gamma, beta);
    return this.run(
      'layer_norm',
      x.shape,
      label,
      params([
        ['u32', rows],
        ['u32', cols],
        ['f32', eps],
      ]),
      [buf(x), buf(gamma), buf(beta)],
      grid1d(rows, 1),
      { WORKGROUP_SIZE: ROW_WORKGROUP },
    );
  }

  async softmax(x: Tensor, label = 'softmax'): Promise<Tensor> {
    checkOperands('softmax', this.device, [x]);
    const { rows, cols } = asMatrix('softmax', x);
    return this.run(
      'softmax',
      x.shape,
      label,
      params([
        ['u32', rows],
        ['u32', cols],
      ]),
      [buf(x)],
      grid1d(rows, 1),
      { WORKGROUP_SIZE: ROW_WORKGROUP },
    );
  }

  batchedMatmul(a: Tensor, b: Tensor, options?: BatchedMatmulOptions): Promise<Tensor> {
    return this.transformer.batchedMatmul(a, b, options);
  }

  rmsNorm(x: Tensor, weight: Tensor, eps: number, label?: string): Promise<Tensor> {
    return this.transformer.rmsNorm(x, weight, eps, label);
  }

  addRmsNorm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
    label?: string,
  ): Promise<AddRmsNormResult> {
    return this.transformer.addRmsNorm(x, residual, weight, eps, label);
  }

  /**
   * One kernel where the planner's pick for the shape is small_m (decode: the up projection and swiglu
   * passes gone); elsewhere the two products and swiglu, which the tiled kernels run faster.
   */
  async swigluMatmul(x: Tensor, wGate: Tensor, wUp: Tensor, label = 'swigluMatmul'): Promise<Tensor> {
    checkOperands('swigluMatmul', this.device, [x, wGate, wUp]);
    const dims = swigluMatmulDims(x, wGate, wUp);
    if (dims.k === 0 || !this.matmuls.fusesGated(this.device, dims)) {
      using scope = new TensorScope();
      const gate = scope.track(await this.matmul(x, wGate, { label: `${label}.gate` }));
      const up = scope.track(await this.matmul(x, wUp, { label: `${label}.up` }));
      return this.transformer.swiglu(gate, up, label);
    }
    const out = this.device.empty([dims.m, dims.n], 'f32', label, { overwritten: true });
    if (out.size === 0) return out;
    try {
      await this.matmuls.encode(this.device, dims, {
        a: buf(x),
        b: buf(wGate),
        up: buf(wUp),
        out: out.buffer,
        bias: undefined,
        activation: 'none',
        variant: undefined,
      });
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }

  silu(x: Tensor, label?: string): Promise<Tensor> {
    return this.transformer.silu(x, label);
  }

  swiglu(gate: Tensor, up: Tensor, label?: string): Promise<Tensor> {
    return this.transformer.swiglu(gate, up, label);
  }

  mul(a: Tensor, b: Tensor, label?: string): Promise<Tensor> {
    return this.transformer.mul(a, b, label);
  }

  rope(x: Tensor, positions: Tensor, options: RopeOptions): Promise<Tensor> {
    return this.transformer.rope(x, positions, options);
  }

  causalSoftmax(x: Tensor, options: CausalSoftmaxOptions): Promise<Tensor> {
    return this.transformer.causalSoftmax(x, options);
  }

  transpose01(x: Tensor, label?: string): Promise<Tensor> {
    return this.transformer.transpose01(x, label);
  }

  slice(x: Tensor, dim: number, start: number, length: number, label?: string): Promise<Tensor> {
    return this.transformer.slice(x, dim, start, length, label);
  }

  concat(inputs: readonly Tensor[], dim: number, label?: string): Promise<Tensor> {
    return this.transformer.concat(inputs, dim, label);
  }

  argmax(x: Tensor, label?: string): Promise<ArgmaxResult> {
    return this.transformer.argmax(x, label);
  }

  routerTopK(logits: Tensor, k: number, label?: string): Promise<RouterTopKResult> {
    return this.transformer.routerTopK(logits, k, label);
  }

  writeCache(cache: Tensor, x: Tensor, position: number): Promise<void> {
    return this.transformer.writeCache(cache, x, position);
  }

  /**
   * Allocates the output and dispatches one kernel. The output binds after the inputs, except for the
   * sum shader, whose inputs come last so that each arity's entry point shares the layout's prefix.
   */
  private async run(
    entry: string,
    shape: readonly number[],
    label: string,
    uniform: ArrayBuffer,
    inputs: readonly GPUBuffer[],
    workgroups: [number, number],
    constants: Record<string, number>,
    file = entry,
    outputFirst = false,
  ): Promise<Tensor> {
    // Each of these kernels stores every element of its output: a reused buffer needs no clear first.
    const out = this.device.empty(shape, 'f32', label, { overwritten: true });
    // Nothing to write (rows of no columns still make a grid of rows): see GpuDevice.dispatch for the rest.
    if (out.size === 0) return out;
    const entryPoint = file === entry ? 'main' : entry;
    const key = `${entry}/wg${constants.WORKGROUP_SIZE}`;
    try {
      await this.device.dispatch({
        source: { key, code: () => loadShader(file), constants, entryPoint },
        params: uniform,
        buffers: outputFirst ? [out.buffer, ...inputs] : [...inputs, out.buffer],
        workgroups,
      });
    } catch (error) {
      out.free();
      throw error;
    }
    return out;
  }
}
