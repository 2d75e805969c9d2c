import type { HostDevice, HostTensor } from '../../runtime/host-device.js';
import type { Tensor } from '../../runtime/tensor.js';
import {
  DEFAULT_LAYER_NORM_EPS,
  type EmbeddingOptions,
  type Kernels,
  type MatmulOptions,
} from '../kernels.js';
import {
  addPeriod,
  asMatrix,
  checkOperands,
  embeddingDims,
  groupRows,
  layerNormDims,
  matmulDims,
  sumInputs,
} from '../shape-checks.js';
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

const f32 = (t: Tensor): Float32Array => (t as HostTensor).data as Float32Array;

/** The CPU reference as a backend: the same Kernels interface, computed by reference-ops. */
export class ReferenceKernels implements Kernels {
  constructor(private readonly device: HostDevice) {}

  async matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Promise<Tensor> {
    const operands = options.bias ? [a, b, options.bias] : [a, b];
    checkOperands('matmul', this.device, operands);
    const { m, n, k } = matmulDims(a, b, options.bias);
    return this.device.timed('matmul', () => {
      const out = matmulRef(f32(a), f32(b), m, n, k, options.bias && f32(options.bias), options.activation);
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
}
