import type { Command } from 'commander';
import { autotuneMatmul, picksByClass } from '../kernels/webgpu/autotune.js';
import { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import { DeviceGroup } from '../runtime/device-group.js';
import type { GpuDevice } from '../runtime/webgpu/gpu-device.js';

/** Shapes of the classes a small model hits: decode rows, a few rows, a block of tokens, big squares. */
const TUNE_SHAPES = [
  { m: 1, k: 1024, n: 1024 },
  { m: 8, k: 256, n: 1000 },
  { m: 64, k: 256, n: 1024 },
  { m: 256, k: 256, n: 1024 },
  { m: 256, k: 1024, n: 256 },
  { m: 512, k: 512, n: 512 },
  { m: 1024, k: 1024, n: 1024 },
];

export function addTuneCommand(program: Command): void {
  program
    .command('tune')
    .description('time every matmul variant on this adapter and keep the winners in the user cache')
    .action(async () => {
      const group = await DeviceGroup.open({ count: 1, backend: 'webgpu' });
      try {
        const device = group.devices[0] as GpuDevice;
        const cache = TuningCache.inUserCache();
        const results = await autotuneMatmul(device, TUNE_SHAPES);
        for (const r of results) {
          const timings = Object.entries(r.timings)
            .map(([name, t]) => `${name} ${t.toFixed(2)} ms`)
            .join(', ');
          process.stdout.write(
            `${r.dims.m}x${r.dims.k}x${r.dims.n} (${r.shapeClass}): ${r.winner}\n  ${timings}\n`,
          );
        }
        const picks = picksByClass(results);
        for (const [cls, variant] of Object.entries(picks))
          process.stdout.write(`pick for ${cls}: ${variant}\n`);
        cache.save(device.adapter, picks);
        process.stdout.write(`saved to ${cache.path}\n`);
      } finally {
        group.destroy();
      }
    });
}
