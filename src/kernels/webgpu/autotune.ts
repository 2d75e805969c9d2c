import type { GpuDevice } from '../../runtime/webgpu/gpu-device.js';
import type { MatmulDims } from '../shape-checks.js';
import type { MatmulPlanner, TunedPicks } from './matmul-planner.js';
import { traitsOf } from './matmul-planner.js';
import { shapeClass } from './matmul-variants.js';
import type { WebGpuKernels } from './webgpu-kernels.js';

export interface TuneResult {
  readonly shapeClass: string;
  readonly dims: MatmulDims;
  readonly winner: string;
  /** Fastest milliseconds per variant over the timed runs, submit to completion. */
  readonly timings: Readonly<Record<string, number>>;
}

/**
 * Times every variant that can run on the device for each shape (the fastest of `runs` after one warm-up,
 * submit to completion) and returns each shape's timings and winner. The device's planner takes one pick
 * per shape class at once (`picksByClass`); persist them with TuningCache.
 */
export async function autotuneMatmul(
  device: GpuDevice,
  shapes: readonly MatmulDims[],
  runs = 5,
): Promise<TuneResult[]> {
  const planner: MatmulPlanner = (device.kernels as WebGpuKernels).matmuls;
  const traits = traitsOf(device);
  const results: TuneResult[] = [];
  for (const dims of shapes) {
    const a = device.empty([dims.m, dims.k], 'f32', 'tune/a');
    const b = device.empty([dims.k, dims.n], 'f32', 'tune/b');
    const timings: Record<string, number> = {};
    try {
      for (const variant of planner.catalog.filter((v) => v.supports(dims, traits))) {
        const samples: number[] = [];
        for (let i = 0; i <= runs; i++) {
          // Submit to completion on the host clock, what a caller waits for: lavapipe's pass timestamps
          // once ranked a variant first that was 20% slower by the wall.
          const start = performance.now();
          const out = await device.kernels.matmul(a, b, { variant: variant.name });
          await device.sync();
          if (i > 0) samples.push(performance.now() - start);
          out.free();
        }
        // The fastest run, not the median: on a shared or noisy machine noise only ever adds time.
        timings[variant.name] = Math.min(...samples);
      }
    } finally {
      a.free();
      b.free();
    }
    const winner = Object.entries(timings).sort((x, y) => x[1] - y[1])[0]![0];
    results.push({ shapeClass: shapeClass(dims), dims, winner, timings });
  }
  planner.setTuned({ ...planner.tunedPicks, ...picksByClass(results) });
  return results;
}

/**
 * One pick per shape class: where several tuned shapes share a class, the variant whose time relative to
 * each shape's fastest has the lowest geometric mean (so a small shape's slowdown weighs as much as a big
 * one's), among the variants timed on every one of them.
 */
export function picksByClass(results: readonly TuneResult[]): TunedPicks {
  const byClass = new Map<string, TuneResult[]>();
  for (const r of results) byClass.set(r.shapeClass, [...(byClass.get(r.shapeClass) ?? []), r]);
  const picks: Record<string, string> = {};
  for (const [cls, members] of byClass) {
    const candidates = Object.keys(members[0]!.timings).filter((v) => members.every((r) => v in r.timings));
    const cost = (variant: string) =>
      members.reduce((sum, r) => sum + Math.log(r.timings[variant]! / r.timings[r.winner]!), 0);
    const best = candidates.sort((x, y) => cost(x) - cost(y))[0];
    if (best) picks[cls] = best;
  }
  return picks;
}
