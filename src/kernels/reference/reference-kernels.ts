import type { HostDevice, HostTensor } from '../../runtime/host-device.js';
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
import {
  addRmsNormDims,
  argmaxDims,
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
import {
  addRef,
  embeddingRef,
  layerNormRef,
  matmulRef,
  meanRowsRef,
  scaleRef,
  softmaxRef,
  sumRef,
} from './reference-ops.js';
import {
  addResidualInPlace,
  addRmsNormRef,
  argmaxRef,
  batchedMatmulRef,
  causalSoftmaxRef,
  copyRunsRef,
  mulRef,
  rmsNormRef,
  ropeRef,
  routerTopKRef,
  siluRef,
  swigluRef,
  transpose01Ref,
  writeCacheRef,
} from './transformer-ops.js';

const f32 = (t: Tensor): Float32Array => (t as HostTensor).data as Float32Array;
const u32 = (t: Tensor): Uint32Array => (t as HostTensor).data as Uint32Array;

/** The CPU reference as a backend: the same Kernels interface, computed by reference-ops. */
export class ReferenceKernels implements Kernels {
  constructor(private readonly device: HostDevice) {}

  async matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
    checkOperands('matmul', this.device, matmulOperands(a, b, options));
    const dims = matmulDims(a, b, options.bias);
    checkResidual(dims, options.residual);
    const { m, n, k } = dims;
    return this.device.timed('matmul', () => {
      const out = matmulRef(f32(a), f32(b), m, n, k, options.bias && f32(options.bias), options.activation);
      if (options.residual) addResidualInPlace(out, f32(options.residual));
      return this.device.adopt(out, [m, n], options.label ?? 'matmul');
    });
  }

  async embedding(table: Tensor, ids: Tensor, options: EmbeddingOptions = {}): Promise<Tensor> {
    checkOperands('embedding', this.device, [table, ids]);
    const { vocabRows, hidden, tokens } = embeddingDims(table, ids);
    return this.device.timed('embedding', () => {
      const ids32 = (ids as HostTensor).data as Uint32Array;
      const out = embeddingRef(f32(table), hidden, vocabRows, ids32, options.rowOffset ?? 0);
      return this.device.adopt(out, [tokens, hidden], options.label ?? 'embedding');
    });
  }

  async add(a: Tensor, b: Tensor, label = 'add'): Promise<Tensor> {
    checkOperands('add', this.device, [a, b]);
    addPeriod(a, b);
    return this.device.timed('add', () => this.device.adopt(addRef(f32(a), f32(b)), a.shape, label));
  }

  async scale(a: Tensor, factor: number, label = 'scale'): Promise<Tensor> {
    checkOperands('scale', this.device, [a]);
    return this.device.timed('scale', () => this.device.adopt(scaleRef(f32(a), factor), a.shape, label));
  }

  async sum(inputs: readonly Tensor[], label = 'sum'): Promise<Tensor> {
    checkOperands('sum', this.device, inputs);
    const first = sumInputs(inputs);
    return this.device.timed('sum', () => this.device.adopt(sumRef(inputs.map(f32)), first.shape, label));
  }

  async meanRows(x: Tensor, rowsPerGroup?: number, label = 'meanRows'): Promise<Tensor> {
    checkOperands('meanRows', this.device, [x]);
    const g = groupRows(x, rowsPerGroup);
    return this.device.timed('meanRows', () =>
      this.device.adopt(meanRowsRef(f32(x), g.groups, g.rowsPerGroup, g.cols), [g.groups, g.cols], label),
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
    return this.device.timed('layerNorm', () =>
      this.device.adopt(layerNormRef(f32(x), rows, cols, f32(gamma), f32(beta), eps), x.shape, label),
    );
  }

  async softmax(x: Tensor, label = 'softmax'): Promise<Tensor> {
    checkOperands('softmax', this.device, [x]);
    const { rows, cols } = asMatrix('softmax', x);
    return this.device.timed('softmax', () =>
      this.device.adopt(softmaxRef(f32(x), rows, cols), x.shape, label),
    );
  }
  async batchedMatmul(a: Tensor, b: Tensor, options: BatchedMatmulOptions = {}): Promise<Tensor> {
    checkOperands('batchedMatmul', this.device, [a, b]);
    const d = batchedMatmulDims(a, b, options);
    return this.device.timed('batchedMatmul', () =>
      this.device.adopt(
        batchedMatmulRef(f32(a), f32(b), d),
        [d.batch, d.m, d.n],
        options.label ?? 'batchedMatmul',
      ),
    );
  }

  async rmsNorm(x: Tensor, weight: Tensor, eps: number, label = 'rmsNorm'): Promise<Tensor> {
    checkOperands('rmsNorm', this.device, [x, weight]);
    const { rows, cols } = rmsNormDims(x, weight);
    return this.device.timed('rmsNorm', () =>
      this.device.adopt(rmsNormRef(f32(x), rows, cols, f32(weight), eps), x.shape, label),
    );
  }

  async addRmsNorm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
    label = 'addRmsNorm',
  ): Promise<AddRmsNormResult> {
    checkOperands('addRmsNorm', this.device, [x, residual, weight]);
    const { rows, cols } = addRmsNormDims(x, residual, weight);
    return this.device.timed('addRmsNorm', () => {
      const r = addRmsNormRef(f32(x), f32(residual), rows, cols, f32(weight), eps);
      return {
        sum: this.device.adopt(r.sum, x.shape, `${label}.sum`),
        normed: this.device.adopt(r.normed, x.shape, label),
      };
    });
  }

  async swigluMatmul(x: Tensor, wGate: Tensor, wUp: Tensor, label = 'swigluMatmul'): Promise<Tensor> {
    checkOperands('swigluMatmul', this.device, [x, wGate, wUp]);
    const { m, n, k } = swigluMatmulDims(x, wGate, wUp);
    return this.device.timed('swigluMatmul', () => {
      const gate = matmulRef(f32(x), f32(wGate), m, n, k);
      const up = matmulRef(f32(x), f32(wUp), m, n, k);
      return this.device.adopt(swigluRef(gate, up), [m, n], label);
    });
  }

  async silu(x: Tensor, label = 'silu'): Promise<Tensor> {
    checkOperands('silu', this.device, [x]);
    return this.device.timed('silu', () => this.device.adopt(siluRef(f32(x)), x.shape, label));
  }

  async swiglu(gate: Tensor, up: Tensor, label = 'swiglu'): Promise<Tensor> {
    checkOperands('swiglu', this.device, [gate, up]);
    pairShapes('swiglu', gate, up);
    return this.device.timed('swiglu', () =>
      this.device.adopt(swigluRef(f32(gate), f32(up)), gate.shape, label),
    );
  }

  async mul(a: Tensor, b: Tensor, label = 'mul'): Promise<Tensor> {
    checkOperands('mul', this.device, [a, b]);
    addPeriod(a, b);
    return this.device.timed('mul', () => this.device.adopt(mulRef(f32(a), f32(b)), a.shape, label));
  }

  async rope(x: Tensor, positions: Tensor, options: RopeOptions): Promise<Tensor> {
    checkOperands('rope', this.device, [x, positions]);
    const d = ropeDims(x, positions, options);
    return this.device.timed('rope', () =>
      this.device.adopt(ropeRef(f32(x), u32(positions), d, options.theta), x.shape, options.label ?? 'rope'),
    );
  }

  async causalSoftmax(x: Tensor, options: CausalSoftmaxOptions): Promise<Tensor> {
    checkOperands('causalSoftmax', this.device, [x]);
    const d = causalSoftmaxDims(x, options);
    return this.device.timed('causalSoftmax', () =>
      this.device.adopt(causalSoftmaxRef(f32(x), d), x.shape, options.label ?? 'causalSoftmax'),
    );
  }

  async transpose01(x: Tensor, label = 'transpose01'): Promise<Tensor> {
    checkOperands('transpose01', this.device, [x]);
    const { a, b, c } = transpose01Dims(x);
    return this.device.timed('transpose01', () =>
      this.device.adopt(transpose01Ref(f32(x), a, b, c), [b, a, c], label),
    );
  }

  async slice(x: Tensor, dim: number, start: number, length: number, label = 'slice'): Promise<Tensor> {
    checkOperands('slice', this.device, [x]);
    const d = sliceDims(x, dim, start, length);
    return this.device.timed('slice', () => {
      const out = this.device.empty(d.shape, x.dtype, label);
      const width = length * d.inner;
      copyRunsRef((x as HostTensor).data, out.data, {
        outer: d.outer,
        width,
        srcRow: d.size * d.inner,
        srcAt: start * d.inner,
        dstRow: width,
        dstAt: 0,
      });
      return out;
    });
  }

  async concat(inputs: readonly Tensor[], dim: number, label = 'concat'): Promise<Tensor> {
    checkOperands('concat', this.device, inputs);
    const d = concatDims(inputs, dim);
    return this.device.timed('concat', () => {
      const out = this.device.empty(d.shape, inputs[0]!.dtype, label);
      let at = 0;
      inputs.forEach((t, i) => {
        const width = d.sizes[i]! * d.inner;
        copyRunsRef((t as HostTensor).data, out.data, {
          outer: d.outer,
          width,
          srcRow: width,
          srcAt: 0,
          dstRow: d.total * d.inner,
          dstAt: at,
        });
        at += width;
      });
      return out;
    });
  }

  async argmax(x: Tensor, label = 'argmax'): Promise<ArgmaxResult> {
    checkOperands('argmax', this.device, [x]);
    const { rows, cols } = argmaxDims(x);
    return this.device.timed('argmax', () => {
      const r = argmaxRef(f32(x), rows, cols);
      return {
        indices: this.device.adopt(r.indices, [rows], `${label}.indices`),
        values: this.device.adopt(r.values, [rows], `${label}.values`),
      };
    });
  }

  async routerTopK(logits: Tensor, k: number, label = 'routerTopK'): Promise<RouterTopKResult> {
    checkOperands('routerTopK', this.device, [logits]);
    const { rows, experts } = routerTopKDims(logits, k);
    return this.device.timed('routerTopK', () => {
      const r = routerTopKRef(f32(logits), rows, experts, k);
      return {
        indices: this.device.adopt(r.indices, [rows, k], `${label}.indices`),
        weights: this.device.adopt(r.weights, [rows, k], `${label}.weights`),
      };
    });
  }

  async writeCache(cache: Tensor, x: Tensor, position: number): Promise<void> {
    checkOperands('writeCache', this.device, [cache, x]);
    const d = writeCacheDims(cache, x, position);
    await this.device.timed('writeCache', () => writeCacheRef(f32(cache), f32(x), d, position));
  }
}
