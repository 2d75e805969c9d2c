import type { GPU, IGPUKernelSettings, IKernelRunShortcut, KernelVariable } from 'gpu.js';

/** A kernel body from gpujs-sources: `this` is gpu.js's kernel context, the arguments are flat arrays. */
// biome-ignore lint/suspicious/noExplicitAny: gpu.js types `this` and the arguments per kernel; the cache holds every kind.
export type KernelBody = (this: any, ...args: any[]) => number | number[];

export interface KernelSpec {
  readonly body: KernelBody;
  /** [width, height] in cells: thread.x < width, thread.y < height. */
  readonly output: readonly [number, number];
  readonly constants: Readonly<Record<string, number>>;
  readonly returnType?: 'Number' | 'Array(4)';
}

/** The argument passed for an operand with no elements (see `KernelCache.run`). */
const NO_ELEMENTS = new Float32Array(1);

/**
 * The compiled gpu.js kernels of one device, by key. gpu.js bakes shapes and constants into a kernel when it
 * first runs (a later setConstants is ignored), so the key names the body, the output, every argument length
 * and every constant; a key that missed one would return a kernel computing another shape.
 */
export class KernelCache {
  private readonly kernels = new Map<string, IKernelRunShortcut>();

  constructor(
    private readonly gpu: GPU,
    /** Threaded runs (webasm worker pool) for outputs big enough to pay for the postMessage round trip. */
    private readonly asyncMode: boolean,
  ) {}

  get size(): number {
    return this.kernels.size;
  }

  static keyOf(spec: KernelSpec, argumentLengths: readonly number[]): string {
    const constants = Object.entries(spec.constants)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => `${name}=${value}`)
      .join(',');
    return `${spec.body.name}|out=${spec.output.join('x')}|args=${argumentLengths.join(',')}|${constants}|${spec.returnType ?? 'Number'}`;
  }

  /**
   * Runs the kernel for `spec` (building it on first use) and returns gpu.js's output rows. An output of no
   * cells (a kernel over an empty tensor) builds and runs nothing: its rows are empty, which the readers in
   * gpujs-output turn into an empty array. Every gpu.js kernel's guard against empty tensors is here.
   */
  async run(spec: KernelSpec, inputs: readonly Float32Array[]): Promise<unknown> {
    const [width, height] = spec.output;
    if (width === 0 || height === 0) return [];
    // gpu.js cannot take an argument of no elements; a kernel whose output is not empty never reads one
    // (its loops over that extent run zero times: a matmul over K = 0), so one value stands in for it.
    const args = inputs.map((a) => (a.length === 0 ? NO_ELEMENTS : a));
    const key = KernelCache.keyOf(
      spec,
      args.map((a) => a.length),
    );
    let kernel = this.kernels.get(key);
    if (!kernel) {
      const settings: IGPUKernelSettings & { returnType?: string } = {
        output: [...spec.output],
        constants: { ...spec.constants },
        asyncMode: this.asyncMode,
        tactic: 'precision',
      };
      if (spec.returnType) settings.returnType = spec.returnType;
      kernel = this.gpu.createKernel(spec.body as unknown as string, settings);
      this.kernels.set(key, kernel);
    }
    return await kernel(...(args as unknown as KernelVariable[]));
  }
}
