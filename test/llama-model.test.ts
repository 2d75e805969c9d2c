import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../src/models/generate.js';
import { LlamaModel } from '../src/models/llama/llama-model.js';
import type { LlamaConfig } from '../src/models/llama-config.js';
import { llamaParameterShapes, preset, randomLlamaWeights } from '../src/models/presets.js';
import type { ShardingPlan } from '../src/models/sharding-plan.js';
import { MemoryWeights } from '../src/parallel/weight-reader.js';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { expectClose } from './support/compare.js';
import { liveBytes, openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';
import { llamaReferenceGreedy, llamaReferenceLogits } from './support/llama-reference.js';

const available = await webGpuAvailable();

/** Three layers (so three pipeline stages), GQA with 3 query heads per KV head: TP=3 cuts a KV group. */
const GQA: LlamaConfig = { ...preset('llama-tiny'), numLayers: 3 };
/** Five heads over one KV head: no TP size divides them, so the split is uneven (2, 2, 1 on three devices). */
const ODD: LlamaConfig = {
  ...preset('llama-tiny-tied'),
  hiddenSize: 40,
  numHeads: 5,
  numKvHeads: 1,
  headDim: 8,
  intermediateSize: 70,
  numLayers: 2,
};

function weightsFor(config: LlamaConfig, seed: number) {
  const tensors = randomLlamaWeights(config, seed);
  const shapes = Object.fromEntries(llamaParameterShapes(config).map((p) => [p.name, p.shape]));
  return { tensors, reader: new MemoryWeights(tensors, shapes) };
}

const PROMPTS = [
  [1, 5, 9, 33, 2, 71, 40],
  [3, 90],
  [17, 17, 17, 60, 4],
];

/** Logits within 1e-4 of the reference, relative to the reference's largest logit. */
function expectLogits(actual: Float32Array, expected: Float32Array): void {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expectClose(actual, expected, { rtol: 1e-4, atol: 1e-4 * scale });
}

const PLANS: [string, ShardingPlan | { tp: number; pp: number }][] = [
  ['TP=1', { tp: 1, pp: 1 }],
  ['TP=2', { tp: 2, pp: 1 }],
  ['TP=3', { tp: 3, pp: 1 }],
  ['PP=2', { tp: 1, pp: 2 }],
  ['PP=3', { tp: 1, pp: 3 }],
  [
    'TP=2 x PP (2 + 1 devices)',
    {
      stages: [
        { devices: [0, 1], layers: 2 },
        { devices: [2], layers: 1 },
      ],
    },
  ],
  [
    'uneven TP=2 (heads 4 + 2, MLP 50 + 30)',
    { stages: [{ devices: [1, 0], layers: 3, heads: [4, 2], intermediate: [50, 30] }] },
  ],
];

describe.skipIf(!available)(`Llama models on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(3);
  });
  afterAll(() => group?.destroy());

  const gqa = weightsFor(GQA, 7);
  const reference = PROMPTS.map((p) => llamaReferenceLogits(GQA, gqa.tensors, p));

  for (const [name, plan] of PLANS) {
    it(`logits of ${name} match the unsharded float64 reference (GQA, 3 prompts of unequal length)`, async () => {
      using model = await LlamaModel.load(group, { config: GQA, weights: gqa.reader }, { plan });
      const logits = await model.forward(PROMPTS);
      for (const [i, l] of logits.entries()) expectLogits(l, reference[i]!);
    });
  }

  it('an odd head split (5 heads over 3 devices, tied embeddings, TP x PP) matches the reference', async () => {
    const odd = weightsFor(ODD, 11);
    for (const plan of [
      { tp: 3, pp: 1 },
      {
        stages: [
          { devices: [2], layers: 1 },
          { devices: [0, 1], layers: 1 },
        ],
      },
    ]) {
      using model = await LlamaModel.load(group, { config: ODD, weights: odd.reader }, { plan });
      const [logits] = await model.forward([PROMPTS[0]!]);
      expectLogits(logits!, llamaReferenceLogits(ODD, odd.tensors, PROMPTS[0]!));
    }
  });

  it('KV-cache decode gives the ids that re-running the whole prefix gives (TP=2, then PP=2 x TP)', async () => {
    const want = PROMPTS.map((p) => llamaReferenceGreedy(GQA, gqa.tensors, p, 6));
    for (const plan of [
      { tp: 2, pp: 1 },
      {
        stages: [
          { devices: [0], layers: 1 },
          { devices: [1, 2], layers: 2 },
        ],
      },
    ]) {
      using model = await LlamaModel.load(group, { config: GQA, weights: gqa.reader }, { plan });
      const result = await generate(model, PROMPTS, { maxNewTokens: 6 });
      expect(result.tokens).toEqual(want);
      expect(result.prefill.tokens).toBe(14);
      expect(result.decode.tokens).toBe(15);
      // Stop ids end one sequence early and keep the id.
      const stopAt = want[0]![2]!;
      const stopped = await generate(model, [PROMPTS[0]!], { maxNewTokens: 6, stopIds: [stopAt] });
      expect(stopped.tokens[0]).toEqual(want[0]!.slice(0, want[0]!.indexOf(stopAt) + 1));
    }
  });

  it('a KV cache that would not fit is refused before the run, naming the device', async () => {
    const small = await openTestGroup(2, 6 * 1024 * 1024);
    try {
      using model = await LlamaModel.load(
        small,
        { config: GQA, weights: gqa.reader },
        { plan: { tp: 2, pp: 1 } },
      );
      const used = small.devices.map((d) => d.ledger.usedBytes);
      // Each device holds one KV slot of 8 values a layer: 400 prompts of 100 + 20 positions over 3 layers
      // need 400 · 3 · 2 · 120 · 8 · 4 bytes = 8.8 MiB of cache a device, over the 6 MiB budget.
      const prompts = Array.from({ length: 400 }, () => Array.from({ length: 100 }, (_, i) => i % 90));
      await expect(generate(model, prompts, { maxNewTokens: 20 })).rejects.toMatchObject({
        code: 'MEMORY_BUDGET',
        message: expect.stringMatching(/:0: the KV cache needs/),
      });
      expect(small.devices.map((d) => d.ledger.usedBytes)).toEqual(used);
    } finally {
      small.destroy();
    }
  });

  it('the ledger comes back to the same bytes in use after every one of 500 decode steps', async () => {
    const long: LlamaConfig = { ...GQA, numLayers: 1, maxPositions: 1024 };
    const weights = weightsFor(long, 3);
    using model = await LlamaModel.load(group, { config: long, weights: weights.reader });
    const device = group.devices[0]!;
    const ledger = device.ledger;
    device.releaseCached();
    const before = ledger.usedBytes;
    const seen: number[] = [];
    await generate(model, [[1, 2, 3]], { maxNewTokens: 501, onStep: () => seen.push(liveBytes(device)) });
    expect(seen).toHaveLength(501);
    expect(new Set(seen.slice(1)).size).toBe(1);
    // Staging buffers the reads of each step's id leave in the pool are kept for reuse, not leaked.
    device.releaseCached();
    expect(ledger.usedBytes).toBe(before);
  });

  it('the state dict names every Hugging Face parameter once, with its placement', async () => {
    using model = await LlamaModel.load(
      group,
      { config: GQA, weights: gqa.reader },
      { plan: { tp: 3, pp: 1 } },
    );
    const dict = model.stateDict();
    expect([...dict.keys()].sort()).toEqual(
      llamaParameterShapes(GQA)
        .map((p) => p.name)
        .sort(),
    );
    expect(dict.get('model.layers.0.mlp.down_proj.weight')!.describe()).toMatch(/Shard\(0/);
    expect(dict.get('model.layers.0.self_attn.q_proj.weight')!.describe()).toMatch(/Shard\(1/);
    expect(dict.get('model.norm.weight')!.describe()).toMatch(/Replicate/);
  });
});
