import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import { planStages } from '../src/strategy/model-plan.js';
import { randomWeights } from '../src/strategy/model-weights.js';
import { StrategySchema } from '../src/strategy/schema.js';
import { weightsFromJson, weightsToJson } from '../src/strategy/weights-file.js';

const strategy = StrategySchema.parse({
  ...JSON.parse(readFileSync(new URL('../examples/seed-fits.json', import.meta.url), 'utf8')),
  model: { vocab_size: 16, hidden_size: 8, ffn_size: 12, seq_len: 4, output_size: 3 },
});
const plans = planStages(strategy);

describe('weights files', () => {
  it('round-trips the weights of every stage', () => {
    const weights = randomWeights(plans, 7);
    const back = weightsFromJson(JSON.parse(JSON.stringify(weightsToJson(weights, plans))), plans, 'w.json');
    expect(back.map((w) => w.w)).toEqual(weights.map((w) => w.w));
    expect(back[2]!.gamma).toEqual(weights[2]!.gamma);
  });

  it('names the stage, the array and the length that is wrong', () => {
    const file = weightsToJson(randomWeights(plans, 7), plans) as { stages: Record<string, { w: number[] }> };
    file.stages.expert_2!.w.pop();
    const error = (() => {
      try {
        weightsFromJson(file, plans, 'w.json');
      } catch (e) {
        return e;
      }
    })();
    expect(isParallelError(error, 'SHAPE')).toBe(true);
    expect((error as Error).message).toMatch(/'expert_2'\.w hold 95 values; the stage needs 96/);
    expect(() => weightsFromJson({ stages: {} }, plans, 'w.json')).toThrow(/no stage 'embed_1'/);
  });
});
