import { ParallelError } from '../../errors.js';
import type { GpuDevice } from '../../runtime/webgpu/gpu-device.js';
import type { Activation } from '../kernels.js';
import type { MatmulDims } from '../shape-checks.js';
import {
  defaultVariant,
  findVariant,
  type MatmulDeviceTraits,
  type MatmulVariant,
  matmulCatalog,
  shapeClass,
} from './matmul-variants.js';
import { loadShader, specialize } from './shader-source.js';

const ACTIVATION_CODE: Readonly<Record<Activation, number>> = { none: 0, relu: 1, gelu: 2 };

export interface MatmulBuffers {
  readonly a: GPUBuffer;
  readonly b: GPUBuffer;
  readonly out: GPUBuffer;
  readonly bias: GPUBuffer | undefined;
  /** [M, N], added after the activation; absent: nothing. */
  readonly residual?: GPUBuffer;
  /**
   * A second B of B's shape: C = silu(A·B) · (A·B_up), with no bias, activation or residual. small_m
   * variants only (see `fusesGated`).
   */
  readonly up?: GPUBuffer;
  readonly activation: Activation;
  readonly variant: string | undefined;
}

/** Winners per shape class, as the autotuner found them on one adapter. */
export type TunedPicks = Readonly<Record<string, string>>;

export function traitsOf(device: GpuDevice): MatmulDeviceTraits {
  const sub = device.subgroupSize;
  return {
    fixedSubgroupSize: sub,
    isSoftware: device.adapter.isSoftware,
    maxWorkgroupsPerDimension: device.adapter.limits.maxComputeWorkgroupsPerDimension ?? 65535,
  };
}

/** Chooses a matmul variant for each shape (forced, tuned, or the default) and dispatches it. */
export class MatmulPlanner {
  readonly catalog: readonly MatmulVariant[] = matmulCatalog();
  private tuned: TunedPicks;

  constructor(tuned: TunedPicks = {}) {
    this.tuned = tuned;
  }

  get tunedPicks(): TunedPicks {
    return this.tuned;
  }

  setTuned(tuned: TunedPicks): void {
    this.tuned = tuned;
  }

  choose(device: GpuDevice, dims: MatmulDims, forced?: string): MatmulVariant {
    const traits = traitsOf(device);
    if (forced) {
      const variant = findVariant(this.catalog, forced);
      if (!variant) {
        throw new ParallelError('INVALID_ARGUMENT', `unknown matmul variant '${forced}'`, {
          fix: `use one of: ${this.catalog.map((v) => v.name).join(', ')}`,
        });
      }
      if (!variant.supports(dims, traits)) {
        throw new ParallelError(
          'INVALID_ARGUMENT',
          `matmul variant ${variant.name} cannot run on ${device.name}`,
          {
            fix: 'it needs subgroups of a fixed size that this adapter does not have',
          },
        );
      }
      return variant;
    }
    const tuned = this.tuned[shapeClass(dims)];
    const pick = tuned ? findVariant(this.catalog, tuned) : undefined;
    return pick?.supports(dims, traits) ? pick : defaultVariant(dims, traits, this.catalog);
  }

  /**
   * Whether the gated product (MatmulBuffers.up) runs as one kernel for this shape: where the pick is a
   * small_m variant (decode's few rows), whose lanes own whole columns and can hold both accumulators.
   */
  fusesGated(device: GpuDevice, dims: MatmulDims, forced?: string): boolean {
    return this.choose(device, dims, forced).kind === 'small_m';
  }

  async encode(device: GpuDevice, dims: MatmulDims, io: MatmulBuffers): Promise<MatmulVariant> {
    const variant = this.choose(device, dims, io.variant);
    const vecB = dims.n % 4 === 0 ? 1 : 0;
    const hasBias = io.bias !== undefined;
    const hasResidual = io.residual !== undefined;
    const gated = io.up !== undefined;
    if (gated && (variant.kind !== 'small_m' || hasBias || hasResidual || io.activation !== 'none')) {
      throw new ParallelError('INVALID_ARGUMENT', `matmul ${variant.name} has no gated form`, {
        fix: 'gate with small_m variants only, with no bias, activation or residual',
      });
    }
    const epilogue = gated
      ? 'gated'
      : `${io.activation}/${hasBias ? 'bias' : 'nobias'}${hasResidual ? '/residual' : ''}`;
    const key = `matmul/${variant.name}/${vecB ? 'vec4b' : 'scalarb'}/${epilogue}`;
    const x = Math.ceil(dims.n / variant.tile.cols);
    const y = Math.ceil(dims.m / variant.tile.rows);
    const max = traitsOf(device).maxWorkgroupsPerDimension;
    if (x > max || y > max) {
      throw new ParallelError(
        'SHAPE',
        `matmul ${dims.m}×${dims.k}×${dims.n} needs ${x}×${y} workgroups, over ${max}`,
        {
          where: key,
          fix: 'split the matmul over more devices or along M',
        },
      );
    }
    const params = new Uint32Array([dims.m, dims.n, dims.k, 0]);
    await device.dispatch({
      source: {
        key,
        code: () =>
          specialize('matmul', loadShader('matmul'), {
            ...variant.template,
            VEC_B: vecB,
            GATED: gated ? 1 : 0,
          }),
        entryPoint: variant.entryPoint,
        constants: {
          ...variant.constants,
          ACTIVATION: ACTIVATION_CODE[io.activation],
          HAS_BIAS: hasBias ? 1 : 0,
          HAS_RESIDUAL: hasResidual ? 1 : 0,
        },
      },
      params: params.buffer,
      // Without a bias or a residual the slot still needs a buffer; A is bound read-only again, which
      // WebGPU allows.
      buffers: [io.a, io.b, io.bias ?? io.a, io.out, io.residual ?? io.a, ...(io.up ? [io.up] : [])],
      workgroups: [x, y],
    });
    return variant;
  }
}
