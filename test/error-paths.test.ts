import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectiveContext, Replicate, Shard, shardFromHost } from '../src/collectives/index.js';
import { isParallelError } from '../src/errors.js';
import { LlamaModel } from '../src/models/llama/llama-model.js';
import type { LlamaConfig } from '../src/models/llama-config.js';
import { llamaParameterShapes, preset, randomLlamaWeights } from '../src/models/presets.js';
import {
  ColumnParallelEmbedding,
  ColumnParallelLinear,
  RowParallelLinear,
  VocabParallelEmbedding,
} from '../src/parallel/index.js';
import { MemoryWeights } from '../src/parallel/weight-reader.js';
import type { Device } from '../src/runtime/device.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * Every layer, collective and model frees what it made when a step fails: a group near its budget must
 * recover from a failed forward. The failure is the real one: a device's budget runs out at its k-th
 * byte of new work (the rest of the budget held by a ledger reservation), for each device in turn and
 * for k from nothing up to all the forward needs, so every allocation of every step fails once.
 */
const available = await webGpuAvailable();
const BUDGET = 64 * 2 ** 20;
const STEPS = 14;

/** What each device holds, once the bytes kept only for reuse are handed back. */
function levels(group: DeviceGroup): number[] {
  return group.devices.map((d) => {
    d.releaseCached();
    return d.ledger.usedBytes;
  });
}

/**
 * Runs `forward` (which frees its own output) once to see what each device needs, then again with each
 * device's headroom cut to k bytes: a failure must be MEMORY_BUDGET and leave every device as it was.
 */
async function failEveryStep(group: DeviceGroup, forward: () => Promise<void>): Promise<number> {
  const before = levels(group);
  for (const d of group.devices) d.ledger.resetPeak();
  await forward();
  const needs = group.devices.map((d, r) => d.ledger.peakBytes - before[r]!);
  expect(levels(group)).toEqual(before);
  let failures = 0;
  for (const [r, device] of group.devices.entries()) {
    const need = needs[r]!;
    for (let step = 0; step < STEPS; step++) {
      const headroom = Math.floor((need * step) / STEPS);
      const ballast = reserveAllBut(device, headroom);
      try {
        await forward();
      } catch (error) {
        if (!isParallelError(error, 'MEMORY_BUDGET')) throw error;
        failures++;
      } finally {
        device.ledger.release(ballast);
      }
      expect(levels(group), `device ${r}, ${headroom} of ${need} bytes free`).toEqual(before);
    }
  }
  return failures;
}

function reserveAllBut(device: Device, headroom: number): number {
  device.releaseCached();
  return device.ledger.reserve(Math.max(0, BUDGET - device.ledger.usedBytes - headroom), 'ballast');
}

const TINY: LlamaConfig = { ...preset('llama-tiny'), numLayers: 2 };

describe.skipIf(!available)(`a failed step frees what it made, on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  let ctx: CollectiveContext;
  const [M, IN, OUT] = [6, 20, 28];
  const x = randomArray(M * IN, 1);
  const w = randomArray(IN * OUT, 2);
  const b = randomArray(OUT, 3);
  beforeAll(async () => {
    group = await openTestGroup(2, BUDGET);
    ctx = new CollectiveContext();
  });
  afterAll(() => {
    ctx?.destroy();
    group?.destroy();
  });

  it.each([false, true])('ColumnParallelLinear (gathered: %s)', async (gatherOutput) => {
    const layer = new ColumnParallelLinear(ctx, {
      group,
      weight: w,
      bias: b,
      inFeatures: IN,
      outFeatures: OUT,
      gatherOutput,
      sizes: [11, 17],
    });
    const input = shardFromHost(group, x, [M, IN], Replicate());
    const failures = await failEveryStep(group, async () => (await layer.forward(input)).output.free());
    expect(failures).toBeGreaterThan(0);
    input.free();
    layer.free();
  });

  it.each([true, false])('RowParallelLinear with its sum and bias (input parallel: %s)', async (parallel) => {
    const layer = new RowParallelLinear(ctx, {
      group,
      weight: w,
      bias: b,
      inFeatures: IN,
      outFeatures: OUT,
      inputIsParallel: parallel,
      sizes: [8, 12],
    });
    const input = shardFromHost(group, x, [M, IN], parallel ? Shard(1, [8, 12]) : Replicate());
    const failures = await failEveryStep(group, async () => (await layer.forward(input)).output.free());
    expect(failures).toBeGreaterThan(0);
    input.free();
    layer.free();
  });

  it('the column- and vocab-parallel embeddings', async () => {
    const [vocab, hidden] = [40, 12];
    const table = randomArray(vocab * hidden, 4);
    const ids = shardFromHost(
      group,
      Uint32Array.from({ length: 9 }, (_, i) => (i * 7) % vocab),
      [9],
      Replicate(),
    );
    for (const layer of [
      new ColumnParallelEmbedding(ctx, { group, table, vocab, hidden, gatherOutput: true }),
      new VocabParallelEmbedding(ctx, { group, table, vocab, hidden }),
    ]) {
      const failures = await failEveryStep(group, async () => (await layer.forward(ids)).output.free());
      expect(failures).toBeGreaterThan(0);
      layer.free();
    }
    ids.free();
  });

  it.each([
    ['a Llama forward at TP=2: attention, MLP, norms, head', TINY, { tp: 2, pp: 1 }],
    [
      'a Mixtral forward at EP=2: router, all_to_all, experts',
      preset('mixtral-tiny'),
      { tp: 2, pp: 1, ep: 2 },
    ],
    ['a Llama forward over 2 pipeline stages', TINY, { tp: 1, pp: 2 }],
  ] as const)('%s', async (_, config, plan) => {
    const tensors = randomLlamaWeights(config, 5);
    const shapes = Object.fromEntries(llamaParameterShapes(config).map((p) => [p.name, p.shape]));
    using model = await LlamaModel.load(
      group,
      { config, weights: new MemoryWeights(tensors, shapes) },
      { plan },
    );
    const failures = await failEveryStep(group, async () => {
      await model.forward([
        [1, 5, 9, 2],
        [7, 3],
      ]);
    });
    expect(failures).toBeGreaterThan(0);
  });
});
