import * as gpujs from 'gpu.js';
import { GPU, type IKernelFunctionThis, Input } from 'gpu.js';
import { ParallelError } from '../../src/errors.js';
import { openGpuJsDevices } from '../../src/runtime/gpujs/open-gpujs.js';
import { openGpu, releaseGpu } from '../../src/runtime/webgpu/dawn.js';
import { benchArray, matmulRowsMatch } from '../check.js';
import { timeMedian } from '../record.js';

/**
 * The gpu.js peers: gpu.js's OWN matmul (the classic kernel of its README, one output per thread, 2-D
 * indexing), timed the way our kernels are: checked against the reference first, then the median of `runs`
 * after a warm-up. Our gpu.js fallback is timed here too, on the same inputs, so the two compare directly.
 */

export interface PeerResult {
  readonly median_ms: number;
  readonly gflops: number;
  readonly checked: boolean;
}

type ClassicConstants = { K: number };

/** gpu.js's classic matmul, as its documentation writes it (loop bounded by a constant). */
function classicMatmul(this: IKernelFunctionThis<ClassicConstants>, a: number[][], b: number[][]): number {
  let sum = 0;
  for (let i = 0; i < this.constants.K; i++) {
    sum += a[this.thread.y]![i]! * b[i]![this.thread.x]!;
  }
  return sum;
}

const gflopsOf = (m: number, n: number, k: number, ms: number): number => (2 * m * n * k) / (ms * 1e6);

function flattenPeerOutput(rows: unknown, m: number, n: number): Float32Array {
  if (!Array.isArray(rows) || rows.length !== m) {
    throw new ParallelError('BACKEND', 'gpu.js peer matmul returned an output of an unexpected form');
  }
  const out = new Float32Array(m * n);
  rows.forEach((row: ArrayLike<number>, i) => {
    out.set(row, i * n);
  });
  return out;
}

/** Inputs for one shape, the same for the peer and for our backend. */
function inputsFor(m: number, n: number, k: number): { a: Float32Array; b: Float32Array } {
  return { a: benchArray(m * k, 1), b: benchArray(k * n, 2) };
}

/**
 * Times gpu.js's own classic matmul in `mode`. webasm runs under asyncMode (worker threads for big outputs),
 * like our backend, unless `threads` is false. webgpu: gpu.js's bundled Dawn (webgpu@0.2.9) does not load
 * here, so `navigator.gpu` is lent from this project's Dawn for the duration and taken back after.
 */
export async function gpujsPeerMatmul(
  mode: 'webasm' | 'webgpu',
  m: number,
  n: number,
  k: number,
  runs: number,
  threads = true,
): Promise<PeerResult> {
  const { a, b } = inputsFor(m, n, k);
  const restore = mode === 'webgpu' ? await lendNavigatorGpu() : async () => {};
  const gpu = new GPU({ mode });
  try {
    const kernel = gpu.createKernel(classicMatmul, {
      output: [n, m],
      constants: { K: k },
      asyncMode: mode === 'webgpu' || threads,
    });
    const A = new Input(a as unknown as number[], [k, m]);
    const B = new Input(b as unknown as number[], [n, k]);
    const run = async () => flattenPeerOutput(await kernel(A, B), m, n);
    const checked = matmulRowsMatch(await run(), a, b, m, n, k);
    const median_ms = await timeMedian(`gpu.js-${mode} ${m}x${n}x${k}`, run, runs, 1);
    return { median_ms, gflops: gflopsOf(m, n, k, median_ms), checked };
  } finally {
    await gpu.destroy();
    await restore();
  }
}

export interface OurGpuJsResult extends PeerResult {
  /** The adapter name of the device that ran it (gpu.js version and mode). */
  readonly mode: string;
}

/** Times our gpu.js backend's matmul (upload outside the timing, result freed each run) on the peer's inputs. */
export async function benchOurGpuJsMatmul(
  m: number,
  n: number,
  k: number,
  runs: number,
): Promise<OurGpuJsResult> {
  const { a, b } = inputsFor(m, n, k);
  const [device] = await openGpuJsDevices({ count: 1, budgets: [undefined] });
  if (!device) throw new ParallelError('BACKEND', 'no gpu.js device opened');
  try {
    const ta = device.upload(a, [m, k], 'a');
    const tb = device.upload(b, [k, n], 'b');
    const first = await device.kernels.matmul(ta, tb);
    const checked = matmulRowsMatch((await first.read()) as Float32Array, a, b, m, n, k);
    first.free();
    const median_ms = await timeMedian(
      `fallback-gpujs ${m}x${n}x${k}`,
      async () => (await device.kernels.matmul(ta, tb)).free(),
      runs,
      1,
    );
    return { median_ms, gflops: gflopsOf(m, n, k, median_ms), checked, mode: device.adapter.name };
  } finally {
    device.destroy();
  }
}

interface WebGpuContextClass {
  destroy(): Promise<void>;
}

/** Sets `globalThis.navigator.gpu` to this project's Dawn; the returned function tears it down again. */
async function lendNavigatorGpu(): Promise<() => Promise<void>> {
  const context = (gpujs as unknown as { WebGPUContext?: WebGpuContextClass }).WebGPUContext;
  if (!context)
    throw new ParallelError('BACKEND', 'gpu.js exports no WebGPUContext: cannot run its webgpu mode');
  const previous = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const gpu = await openGpu();
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return async () => {
    await context.destroy();
    releaseGpu(gpu);
    if (previous) Object.defineProperty(globalThis, 'navigator', previous);
    else delete (globalThis as { navigator?: unknown }).navigator;
  };
}
