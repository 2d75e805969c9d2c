import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRandom } from '../src/random.js';
import { checkStrategy } from '../src/strategy/check-strategy.js';
import { hasErrors } from '../src/strategy/findings.js';
import { estimateMemory } from '../src/strategy/memory-estimate.js';
import { runStrategy } from '../src/strategy/run-strategy.js';
import type { Strategy } from '../src/strategy/schema.js';
import { root } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * The memory check is a bound: a strategy that validates at a cap never runs out of memory under it.
 * Fuzzed variants of every chain example (batch, sequence length, vocabulary, microbatch count) run with
 * the cap set to exactly their largest estimate; each device's measured peak stays within its own estimate.
 * A dozen per backend here, for time; WEBGPU_PARALLEL_MEMORY_FUZZ=40 runs the forty (all passed on both).
 */
const available = await webGpuAvailable();
const TEMPLATES = ['seed-fits', 'megatron-mlp', 'vocab-parallel', 'data-parallel-agg'].map(
  (name) => JSON.parse(readFileSync(join(root, 'examples', `${name}.json`), 'utf8')) as Strategy,
);
const COUNT = Number(process.env.WEBGPU_PARALLEL_MEMORY_FUZZ ?? 12);

function pick<T>(random: () => number, values: readonly T[]): T {
  return values[Math.floor(random() * values.length)]!;
}

/** A valid variant of a template, and its estimate per device. */
function variant(random: () => number): { strategy: Strategy; estimate: number[] } {
  for (;;) {
    const base = pick(random, TEMPLATES);
    const batch = pick(random, [2, 4, 6, 8, 12, 16]);
    const microbatches = pick(
      random,
      Array.from({ length: batch }, (_, i) => i + 1).filter((d) => batch % d === 0),
    );
    const strategy: Strategy = {
      ...base,
      model: {
        ...base.model,
        seq_len: pick(random, [3, 8, 17, 32]),
        vocab_size: pick(random, [512, 1000, 2048]),
        output_size: pick(random, [4, 16, 33]),
      },
      batch: { batch_size: batch, microbatches },
    };
    const checked = checkStrategy(strategy);
    if (checked.family !== 'chain' || !checked.strategy || hasErrors(checked.findings)) continue;
    const estimate = estimateMemory(checked.strategy, checked.plans).map((d) => d.total);
    const capped = {
      ...strategy,
      hardware: { ...strategy.hardware, memory_per_device_bytes: Math.max(...estimate) },
    };
    if (hasErrors(checkStrategy(capped).findings)) continue;
    return { strategy: capped, estimate };
  }
}

describe.skipIf(!available)(`the memory estimate bounds the run, on ${TEST_BACKEND}`, () => {
  const random = makeRandom(20261203);
  const cases = Array.from({ length: COUNT }, () => variant(random));
  it.each(cases.map((c, i) => [i, c] as const))(
    'fuzzed strategy %i at its estimated cap',
    async (_, c) => {
      const run = await runStrategy(c.strategy, {
        backend: TEST_BACKEND,
        repeats: 1,
        sequentialBaseline: false,
      });
      expect(run.checks.every((check) => check.passed)).toBe(true);
      for (const device of run.pipelined.devices) {
        const own = c.estimate[device.device]!;
        expect(device.peakBytes, `device ${device.device} of ${c.strategy.name}`).toBeLessThanOrEqual(own);
      }
    },
    60_000,
  );
});
