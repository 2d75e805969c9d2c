import type { HostDevice, HostTensor } from '../../runtime/host-device.js';
import { TensorScope } from '../../runtime/scope.js';
import type { Tensor } from '../../runtime/tensor.js';
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
import { addResidualInPlace } from '../reference/transformer-ops.js';
import {
  addPeriod,
  asMatrix,
  checkOperands,
  checkResidual,
  embeddingDims,
  groupRows,
  layerNormDims,
  matmulDims,
  matmulOperands,
  sumInputs,
  swigluMatmulDims,
} from '../shape-checks.js';
import { addRmsNormDims } from '../transformer-checks.js';
import { embeddingIds } from './embedding-ids.js';
import { checkIndexable, F32_INDEX_LIMIT } from './f32-index-limit.js';
import { gpujsMatmul } from './gpujs-matmul.js';
import { flattenRows } from './gpujs-output.js';
import {
  addRow,
  addSame,
  embeddingRows,
  layerNormStats,
  meanOfGroups,
  normalizeRows,
  scaleBy,
  softmaxRows,
  softmaxStats,
  sumStacked,
} from './gpujs-sources.js';
import type { KernelCache, KernelSpec } from './kernel-cache.js';
import { GpuJsTransformerKernels } from './transformer-kernels.js';

const f32 = (t: Tensor): Float32Array => (t as HostTensor).data as Float32Array;

/** Any tensor as [width, height] cells for an elementwise kernel: the last dim is the width. */
function cellsOf(t: Tensor): readonly [number, number] {
  return [t.shape[t.shape.length - 1]!, t.shape.slice(0, -1).reduce((n, d) => n * d, 1)];
}

/**
 * Every kernel of the Kernels interface on gpu.js. Operands are checked by shape-checks (the same errors as
 * every backend), the work runs in gpu.js kernels from gpujs-sources, compiled once per shape and constant
 * set and cached per device; each call records one host-clock span.
 */
export class GpuJsKernels implements Kernels {
  /** The transformer kernels, in their own module (transformer-kernels.ts) to keep this one small. */
  private readonly transformer: GpuJsTransformerKernels;

  constructor(
    private readonly device: HostDevice,
    private readonly cache: KernelCache,
  ) {
    this.transformer = new GpuJsTransformerKernels(device, cache);
  }

  async matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
    checkOperands('matmul', this.device, matmulOperands(a, b, options));
    const dims = matmulDims(a, b, options.bias);
    checkResidual(dims, options.residual);
    const { m, n, k } = dims;
    checkIndexable('matmul', a, b);
    return this.device.timed('matmul', async () => {
      const out = await gpujsMatmul(this.cache, {
        a: f32(a),
        b: f32(b),
        bias: options.bias && f32(options.bias),
        m,
        n,
        k,
        activation: options.activation,
      });
      // On the host, where the product's rows are de-interleaved anyway: one f32 add each, as `add` does.
      if (options.residual) addResidualInPlace(out, f32(options.residual));
      return this.device.adopt(out, [m, n], options.label ?? 'matmul');
    });
  }

  async embedding(table: Tensor, ids: Tensor, options: EmbeddingOptions = {}): Promise<Tensor> {
    checkOperands('embedding', this.device, [table, ids]);
    const { vocabRows, hidden, tokens } = embeddingDims(table, ids);
    checkIndexable('embedding', table);
    const rowOffset = options.rowOffset ?? 0;
    return this.device.timed('embedding', async () => {
      const spec = {
        body: embeddingRows,
        output: [hidden, tokens] as const,
        constants: { H: hidden, V: vocabRows, rowOffset },
      };
      const idsF32 = embeddingIds((ids as HostTensor).data as Uint32Array, rowOffset, vocabRows);
      const out = await this.rows(spec, [f32(table), idsF32], 'embedding');
      return this.device.adopt(out, [tokens, hidden], options.label ?? 'embedding');
    });
  }

  async add(a: Tensor, b: Tensor, label = 'add'): Promise<Tensor> {
    checkOperands('add', this.device, [a, b]);
    const broadcast = addPeriod(a, b) !== a.size;
    checkIndexable('add', a);
    return this.device.timed('add', async () => {
      const output = cellsOf(a);
      const spec = { body: broadcast ? addRow : addSame, output, constants: { W: output[0] } };
      return this.device.adopt(await this.rows(spec, [f32(a), f32(b)], 'add'), a.shape, label);
    });
  }

  async scale(a: Tensor, factor: number, label = 'scale'): Promise<Tensor> {
    checkOperands('scale', this.device, [a]);
    checkIndexable('scale', a);
    return this.device.timed('scale', async () => {
      const output = cellsOf(a);
      const spec = { body: scaleBy, output, constants: { W: output[0], factor } };
      return this.device.adopt(await this.rows(spec, [f32(a)], 'scale'), a.shape, label);
    });
  }

  /**
   * gpu.js kernels take a fixed argument list, so the inputs are stacked into one array on the host and
   * summed by one kernel; where the stack would pass gpu.js's index limit, they are added pairwise instead.
   */
  async sum(inputs: readonly Tensor[], label = 'sum'): Promise<Tensor> {
    checkOperands('sum', this.device, inputs);
    const first = sumInputs(inputs);
    checkIndexable('sum', first);
    return this.device.timed('sum', async () => {
      const size = first.size;
      const output = cellsOf(first);
      if (size * inputs.length >= F32_INDEX_LIMIT) {
        const spec = { body: addSame, output, constants: { W: output[0] } };
        let acc = f32(first);
        for (const t of inputs.slice(1)) acc = await this.rows(spec, [acc, f32(t)], 'sum');
        return this.device.adopt(acc === f32(first) ? new Float32Array(acc) : acc, first.shape, label);
      }
      const stacked = new Float32Array(size * inputs.length);
      inputs.forEach((t, i) => {
        stacked.set(f32(t), i * size);
      });
      const spec = { body: sumStacked, output, constants: { W: output[0], size, count: inputs.length } };
      return this.device.adopt(await this.rows(spec, [stacked], 'sum'), first.shape, label);
    });
  }

  async meanRows(x: Tensor, rowsPerGroup?: number, label = 'meanRows'): Promise<Tensor> {
    checkOperands('meanRows', this.device, [x]);
    const g = groupRows(x, rowsPerGroup);
    checkIndexable('meanRows', x);
    return this.device.timed('meanRows', async () => {
      const spec = {
        body: meanOfGroups,
        output: [g.cols, g.groups] as const,
        constants: { C: g.cols, rowsPerGroup: g.rowsPerGroup },
      };
      return this.device.adopt(await this.rows(spec, [f32(x)], 'meanRows'), [g.groups, g.cols], label);
    });
  }

  /** Two kernels: per-row (mean, rstd), then the elementwise normalization (one pass over C per row each). */
  async layerNorm(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps = DEFAULT_LAYER_NORM_EPS,
    label = 'layerNorm',
  ): Promise<Tensor> {
    checkOperands('layerNorm', this.device, [x, gamma, beta]);
    const { rows, cols } = layerNormDims(x, gamma, beta);
    checkIndexable('layerNorm', x);
    // Rows of no columns: the per-row statistics would run for an output of nothing.
    if (x.size === 0) return this.device.empty(x.shape, 'f32', label);
    return this.device.timed('layerNorm', async () => {
      const statsSpec = { body: layerNormStats, output: [2, rows] as const, constants: { C: cols, eps } };
      const stats = await this.rows(statsSpec, [f32(x)], 'layerNorm');
      const spec = { body: normalizeRows, output: [cols, rows] as const, constants: { C: cols } };
      const out = await this.rows(spec, [f32(x), stats, f32(gamma), f32(beta)], 'layerNorm');
      return this.device.adopt(out, x.shape, label);
    });
  }

  /** Two kernels: per-row (max, sum of exp), then exp(x - max) / sum. */
  async softmax(x: Tensor, label = 'softmax'): Promise<Tensor> {
    checkOperands('softmax', this.device, [x]);
    const { rows, cols } = asMatrix('softmax', x);
    checkIndexable('softmax', x);
    // Rows of no columns: the per-row statistics would run for an output of nothing.
    if (x.size === 0) return this.device.empty(x.shape, 'f32', label);
    return this.device.timed('softmax', async () => {
      const stats = await this.rows(
        { body: softmaxStats, output: [2, rows], constants: { C: cols } },
        [f32(x)],
        'softmax',
      );
      const spec = { body: softmaxRows, output: [cols, rows] as const, constants: { C: cols } };
      return this.device.adopt(await this.rows(spec, [f32(x), stats], 'softmax'), x.shape, label);
    });
  }

  batchedMatmul(a: Tensor, b: Tensor, options?: BatchedMatmulOptions): Promise<Tensor> {
    return this.transformer.batchedMatmul(a, b, options);
  }
  rmsNorm(x: Tensor, weight: Tensor, eps: number, label?: string): Promise<Tensor> {
    return this.transformer.rmsNorm(x, weight, eps, label);
  }
  /**
   * The add, then rmsNorm's two kernels on the sum: gpu.js pays no per-dispatch cost to save by fusing,
   * and the composition keeps both outputs equal to `add` and `rmsNorm` by construction.
   */
  async addRmsNorm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
    label = 'addRmsNorm',
  ): Promise<AddRmsNormResult> {
    checkOperands('addRmsNorm', this.device, [x, residual, weight]);
    const { rows, cols } = addRmsNormDims(x, residual, weight);
    // `add` takes matrices: rows of any rank as [rows, cols], the sum back in x's shape.
    const flat = await this.add(x.reshape([rows, cols]), residual.reshape([rows, cols]), `${label}.sum`);
    const sum = flat.reshape(x.shape, { owning: true });
    try {
      return { sum, normed: await this.transformer.rmsNorm(sum, weight, eps, label) };
    } catch (error) {
      sum.free();
      throw error;
    }
  }

  /** The two products, then swiglu: each is a host-clock pass here, with no dispatch cost to save. */
  async swigluMatmul(x: Tensor, wGate: Tensor, wUp: Tensor, label = 'swigluMatmul'): Promise<Tensor> {
    checkOperands('swigluMatmul', this.device, [x, wGate, wUp]);
    swigluMatmulDims(x, wGate, wUp);
    using scope = new TensorScope();
    const gate = scope.track(await this.matmul(x, wGate, { label: `${label}.gate` }));
    const up = scope.track(await this.matmul(x, wUp, { label: `${label}.up` }));
    return this.transformer.swiglu(gate, up, label);
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

  private async rows(spec: KernelSpec, args: readonly Float32Array[], op: string): Promise<Float32Array> {
    const [width, height] = spec.output;
    return flattenRows(await this.cache.run(spec, args), width, height, op);
  }
}
