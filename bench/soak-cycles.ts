/**
 * One soak process (run by bench/soak.ts): `cycles` rounds of open, work, destroy in one process, as a
 * service running strategies on request does. Prints one JSON line, then `done`, and ends: the parent
 * times the exit from that mark. Run with --expose-gc, so the RSS samples follow a collection.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { runStrategy } from '../src/strategy/run-strategy.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '100' },
    backend: { type: 'string', default: 'webgpu' },
    work: { type: 'string', default: 'kernels' },
    strategy: { type: 'string', default: 'examples/seed-fits.json' },
  },
});
const cycles = Number(values.cycles);
const backend = values.backend === 'gpujs' ? 'gpujs' : 'webgpu';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const strategy = JSON.parse(readFileSync(values.strategy!, 'utf8'));

let made = 0;
let collected = 0;
const devices = new FinalizationRegistry<number>(() => collected++);

async function kernelsCycle(): Promise<void> {
  const group = await DeviceGroup.open({ count: 3, backend });
  try {
    for (const device of group.devices) {
      devices.register(device, made++);
      const a = device.upload(new Float32Array(96 * 80).fill(0.5), [96, 80], 'soak.a');
      const b = device.upload(new Float32Array(80 * 72).fill(0.25), [80, 72], 'soak.b');
      const c = await device.kernels.matmul(a, b, { label: 'soak.matmul' });
      const out = (await device.read(c)) as Float32Array;
      // Every element is 80 * 0.5 * 0.25 = 10, exactly in f32.
      if (out[0] !== 10 || out[out.length - 1] !== 10) throw new Error(`soak matmul gave ${out[0]}`);
      a.free();
      b.free();
      c.free();
    }
  } finally {
    group.destroy();
  }
}

async function strategyCycle(): Promise<void> {
  const run = await runStrategy(strategy, { backend, repeats: 1, sequentialBaseline: false });
  if (!run.checks.every((c) => c.passed)) throw new Error('soak strategy run failed its output check');
  made++;
}

const rssMiB: number[] = [];
const sampleEvery = Math.max(1, Math.floor(cycles / 10));
const startMs = performance.now();
for (let i = 0; i < cycles; i++) {
  await (values.work === 'strategy' ? strategyCycle() : kernelsCycle());
  // As between a service's requests: gpu.js finishes a destroy in a later task, which a loop of awaits
  // alone never reaches (bench/RESULTS.md, "Soak").
  await new Promise((resolve) => setImmediate(resolve));
  if ((i + 1) % sampleEvery === 0) {
    gc();
    rssMiB.push(process.memoryUsage().rss / 2 ** 20);
  }
}
for (let k = 0; k < 3; k++) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 20));
}
process.stdout.write(
  `${JSON.stringify({
    cycles,
    backend,
    work: values.work,
    cycleMs: (performance.now() - startMs) / cycles,
    rssMiB,
    made,
    collected: values.work === 'kernels' ? collected : null,
  })}\ndone\n`,
);
