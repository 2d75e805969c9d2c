import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectiveContext } from '../src/collectives/context.js';
import { shardFromHost } from '../src/collectives/host-io.js';
import { Replicate } from '../src/collectives/layout.js';
import { generate } from '../src/models/generate.js';
import { LlamaModel } from '../src/models/llama/llama-model.js';
import type { LlamaConfig } from '../src/models/llama-config.js';
import { llamaParameterShapes, preset, randomLlamaWeights } from '../src/models/presets.js';
import type { ShardingPlan } from '../src/models/sharding-plan.js';
import { ExpertLoad } from '../src/parallel/expert-load.js';
import { MixtureOfExperts } from '../src/parallel/moe.js';
import { MemoryWeights } from '../src/parallel/weight-reader.js';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { expectClose, randomArray } from './support/compare.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';
import {
  type LlamaReferenceOptions,
  llamaReferenceGreedy,
  llamaReferenceLogits,
  type MixtralMoeResult,
  mixtralMoeRef,
} from './support/llama-reference.js';

const available = await webGpuAvailable();

/** Mixtral-tiny: 4 experts, top-2, GQA (6 heads over 2 KV heads); 4 experts over 3 groups is uneven. */
const MIX: LlamaConfig = preset('mixtral-tiny');
const tensors = randomLlamaWeights(MIX, 1234);
const shapes = Object.fromEntries(llamaParameterShapes(MIX).map((p) => [p.name, p.shape]));
const weights = new MemoryWeights(tensors, shapes);

const PROMPTS = [
  [1, 5, 9, 33, 2, 71, 40, 12, 88],
  [3, 90],
];

function expectLogits(actual: Float32Array, expected: Float32Array): void {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expectClose(actual, expected, { rtol: 1e-4, atol: 1e-4 * scale });
}

/** The reference's routing for a prompt: per layer, the MoE input and result. */
function referenceRouting(ids: readonly number[], options: LlamaReferenceOptions = {}) {
  const layers: { input: Float32Array; result: MixtralMoeResult }[] = [];
  const logits = llamaReferenceLogits(MIX, tensors, ids, {
    ...options,
    onMoe: (_layer, input, result) => layers.push({ input, result }),
  });
  return { logits, layers };
}

type Plan = ShardingPlan | { tp: number; pp: number; ep?: number };
const PLANS: [string, number, Plan][] = [
  ['TP=1 (all experts on one device)', 1, { tp: 1, pp: 1 }],
  ['TP=2, every expert split over both', 2, { tp: 2, pp: 1 }],
  ['EP=2', 2, { tp: 2, pp: 1, ep: 2 }],
  ['EP=3 (4 experts over 3 devices)', 3, { tp: 3, pp: 1, ep: 3 }],
  ['EP=2 x TP=2 (each expert over 2 devices)', 4, { tp: 4, pp: 1, ep: 2 }],
  [
    'PP=2, EP=2 in the second stage',
    3,
    {
      stages: [
        { devices: [0], layers: 1 },
        { devices: [1, 2], layers: 1, ep: 2 },
      ],
    },
  ],
  [
    'EP=3 placed by the plan: [3], [0, 2], [1]',
    3,
    { stages: [{ devices: [0, 1, 2], layers: 2, ep: 3, experts: [[3], [0, 2], [1]] }] },
  ],
];

describe.skipIf(!available)(`Mixtral with expert parallelism on ${TEST_BACKEND}`, () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(4);
  });
  afterAll(() => group?.destroy());

  it('one MoE layer over EP 1, 2, 3 and EP 2 x TP 2 equals the reference block, on 1 to 40 tokens', async () => {
    const shape = { ...MIX, numExperts: 4, expertsPerToken: 2 };
    for (const [ep, devices] of [
      [1, 1],
      [2, 2],
      [3, 3],
      [2, 4],
    ] as const) {
      const sub = DeviceGroup.of(group.devices.slice(0, devices));
      const ctx = new CollectiveContext();
      const load = new ExpertLoad();
      const moe = new MixtureOfExperts(ctx, sub, weights, 'model.layers.1', shape, { ep, load });
      try {
        for (const tokens of [1, 2, 5, 40]) {
          const x = randomArray(tokens * MIX.hiddenSize, tokens + ep);
          const input = shardFromHost(sub, x, [tokens, MIX.hiddenSize], Replicate(), 'x');
          const out = await moe.forward(input);
          const want = mixtralMoeRef(MIX, tensors, 1, x);
          for (const shard of out.shards) {
            expectClose((await shard.read()) as Float32Array, want.out, { rtol: 1e-4, atol: 1e-5 });
          }
          out.free();
          input.free();
          const counts = [0, 0, 0, 0];
          for (const row of want.routing.indices) for (const e of row) counts[e]!++;
          expect(load.steps.at(-1)!.perExpert).toEqual(counts);
        }
      } finally {
        moe.free();
        ctx.destroy();
      }
    }
  });

  for (const [name, devices, plan] of PLANS) {
    it(`${name}: logits match the float64 reference, and the load counts its routing`, async () => {
      using model = await LlamaModel.load(group, { config: MIX, weights }, { plan: plan as ShardingPlan });
      expect(new Set(model.stages.flatMap((s) => s.group.devices)).size).toBe(devices);
      const out = await model.forward(PROMPTS);
      const perExpert = [0, 0, 0, 0];
      for (const [i, prompt] of PROMPTS.entries()) {
        const ref = referenceRouting(prompt);
        expectLogits(out[i]!, ref.logits);
        for (const { result } of ref.layers)
          for (const row of result.routing.indices) for (const e of row) perExpert[e]!++;
      }
      const summary = model.expertLoad!.summary();
      const counted = [0, 0, 0, 0];
      for (const stage of summary.stages) {
        stage.perExpert.forEach((n, e) => {
          counted[e]! += n;
        });
      }
      expect(counted).toEqual(perExpert);
      expect(summary.stages.every((s) => s.perExpert.reduce((a, b) => a + b, 0) > 0)).toBe(true);
    });
  }

  it('KV-cache decode gives the greedy ids of re-running the whole prefix (EP=3, then EP=2 x TP=2)', async () => {
    const want = PROMPTS.map((p) => llamaReferenceGreedy(MIX, tensors, p, 5));
    for (const plan of [
      { tp: 3, pp: 1, ep: 3 },
      { tp: 4, pp: 1, ep: 2 },
    ]) {
      using model = await LlamaModel.load(group, { config: MIX, weights }, { plan });
      const used = () => group.devices.map((d) => d.ledger.usedBytes);
      for (const d of group.devices) d.releaseCached();
      const before = used();
      const result = await generate(model, PROMPTS, { maxNewTokens: 5 });
      // Decode steps route one token per sequence: groups with no token send and receive zero rows.
      expect(result.tokens).toEqual(want);
      // What the devices keep for reuse (staging, freed buffers) goes back; nothing else is left.
      for (const d of group.devices) d.releaseCached();
      expect(used()).toEqual(before);
      // One sequence: each decode step has one token, so one group routes it and the others none.
      const single = await generate(model, [PROMPTS[1]!], { maxNewTokens: 4 });
      expect(single.tokens).toEqual([want[1]!.slice(0, 4)]);
    }
  });

  it('a capacity factor drops exactly the reference’s assignments, and the logits follow', async () => {
    const factor = 0.75;
    using model = await LlamaModel.load(
      group,
      { config: MIX, weights },
      { plan: { tp: 3, pp: 1, ep: 3 }, capacityFactor: factor },
    );
    const prompt = PROMPTS[0]!;
    const [logits] = await model.forward([prompt]);
    const ref = referenceRouting(prompt, { capacity: { factor } });
    expectLogits(logits!, ref.logits);
    const steps = model.expertLoad!.steps;
    expect(steps.map((s) => s.dropped)).toEqual(ref.layers.map((l) => l.result.dropped));
    expect(steps.reduce((n, s) => n + s.dropped.reduce((a, b) => a + b, 0), 0)).toBeGreaterThan(0);
  });

  it('refuses an ep that does not divide the stage, and an expert placed twice', async () => {
    await expect(
      LlamaModel.load(group, { config: MIX, weights }, { plan: { tp: 3, pp: 1, ep: 2 } }),
    ).rejects.toMatchObject({
      code: 'SPLIT',
      message: expect.stringMatching(/does not divide the 3 devices/),
    });
    await expect(
      LlamaModel.load(
        group,
        { config: MIX, weights },
        {
          plan: {
            stages: [
              {
                devices: [0, 1],
                layers: 2,
                ep: 2,
                experts: [
                  [0, 1],
                  [1, 2, 3],
                ],
              },
            ],
          },
        },
      ),
    ).rejects.toMatchObject({ code: 'SPLIT', message: expect.stringMatching(/expert 1 is placed twice/) });
  });
});
