import { autotuneMatmul } from '../src/kernels/webgpu/autotune.js';
import { traitsOf } from '../src/kernels/webgpu/matmul-planner.js';
import type { WebGpuKernels } from '../src/kernels/webgpu/webgpu-kernels.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { benchArray, matmulRowsMatch } from './check.js';
import type { BenchSink } from './record.js';
import { timeMedian } from './record.js';

export interface MatmulShape {
  readonly label: string;
  readonly m: number;
  readonly n: number;
  readonly k: number;
}

/** Square sizes, and the layers of a small model (tokens × hidden 256, FFN 1024, vocab 1000). */
export function matmulShapes(quick: boolean): MatmulShape[] {
  const squares = (quick ? [256, 512, 1024] : [256, 512, 1024, 2048]).map((s) => ({
    label: `square${s}`,
    m: s,
    n: s,
    k: s,
  }));
  return [
    ...squares,
    { label: 'ffn_up_256tok', m: 256, k: 256, n: 1024 },
    { label: 'ffn_down_256tok', m: 256, k: 1024, n: 256 },
    { label: 'logits_8seq', m: 8, k: 256, n: 1000 },
    { label: 'decode_1tok', m: 1, k: 1024, n: 1024 },
  ];
}

export const gflops = (m: number, n: number, k: number, ms: number) => (2 * m * n * k) / (ms * 1e6);

/**
 * Every matmul variant the device can run, and the autotuner's pick, on each shape: the result checked
 * against the reference, then the median of `runs` timed calls after a warm-up (submit to completion).
 */
export async function benchMatmulVariants(
  device: GpuDevice,
  shapes: readonly MatmulShape[],
  sink: BenchSink,
  runs: number,
) {
  const planner = (device.kernels as WebGpuKernels).matmuls;
  const traits = traitsOf(device);
  const tunedMs = new Map<string, number>();
  for (const shape of shapes) {
    const { m, n, k } = shape;
    const a = benchArray(m * k, m + k);
    const b = benchArray(k * n, n + 2 * k);
    const ta = device.upload(a, [m, k], 'bench/a');
    const tb = device.upload(b, [k, n], 'bench/b');
    const [tuned] = await autotuneMatmul(device, [{ m, n, k }], 3);
    const variants = planner.catalog.filter((v) => v.supports({ m, n, k }, traits));
    for (const name of [...variants.map((v) => v.name), 'tuned']) {
      const variant = name === 'tuned' ? tuned!.winner : name;
      const once = async () => {
        const out = await device.kernels.matmul(ta, tb, { variant });
        await device.sync();
        return out;
      };
      const first = await once();
      const checked = matmulRowsMatch((await first.read()) as Float32Array, a, b, m, n, k);
      first.free();
      const ms = await timeMedian(`${shape.label}/${name}`, async () => (await once()).free(), runs);
      if (name === 'tuned') tunedMs.set(shape.label, ms);
      sink({
        suite: 'matmul',
        name: `${shape.label}/${name === 'tuned' ? `tuned(${variant})` : name}`,
        backend: 'webgpu',
        adapter: device.adapter.name,
        m,
        n,
        k,
        median_ms: ms,
        gflops: gflops(m, n, k, ms),
        checked,
        peer: null,
      });
    }
    ta.free();
    tb.free();
  }
  return tunedMs;
}

/**
 * The cost of small kernels, submit to completion: 1, 10 and 100 of them queued into the device's batches
 * (the default), and the same with a submit after each kernel (what every kernel did before batching).
 * Each kernel scales 64 values, so the figure is what a kernel costs beyond its arithmetic.
 */
export async function benchDispatch(device: GpuDevice, sink: BenchSink): Promise<void> {
  const x = device.upload(new Float32Array(64), [64], 'bench/tiny');
  const base = { suite: 'dispatch' as const, backend: 'webgpu', adapter: device.adapter.name, peer: null };
  // The first few thousand kernels of a process run slower (the JIT has not compiled the dispatch path yet,
  // and bind groups and buffers are being made): they are run once untimed.
  for (let round = 0; round < 30; round++) {
    const outs = [];
    for (let i = 0; i < 100; i++) outs.push(await device.kernels.scale(x, 2));
    await device.sync();
    for (const o of outs) o.free();
  }
  for (const count of [1, 10, 100]) {
    for (const mode of ['batched', 'submit each'] as const) {
      const ms = await timeMedian(
        `dispatch/${count}/${mode}`,
        async () => {
          const outs = [];
          for (let i = 0; i < count; i++) {
            outs.push(await device.kernels.scale(x, 2));
            if (mode === 'submit each') device.flush();
          }
          await device.sync();
          for (const o of outs) o.free();
        },
        21,
        2,
      );
      sink({
        ...base,
        name: `dispatch_x${count}_${mode === 'batched' ? 'batched' : 'submit_each'}`,
        kernels: count,
        median_ms: ms,
        us_per_dispatch: (ms * 1000) / count,
      });
    }
  }
  x.free();
}
