import { z } from 'zod';
import { ParallelError } from '../errors.js';
import type { StagePlan } from './model-plan.js';
import type { StageWeights } from './stages/kind.js';
import { chainKind } from './stages/registry.js';

const Floats = z.array(z.number().finite());
const StageWeightsSchema = z
  .object({ w: Floats, b: Floats.optional(), gamma: Floats.optional(), beta: Floats.optional() })
  .strict();
const WeightsFileSchema = z.object({ stages: z.record(z.string(), StageWeightsSchema) }).strict();

/**
 * Weights from a JSON file `{ "stages": { "<stage name>": { "w": [...], "b": [...], ... } } }`, full and
 * unsharded (W is [in, out] row-major; an embedding's W is the table [vocab, hidden]). Every stage must be
 * there with every array of the right length; the error names the file, the JSON path and the length.
 */
export function weightsFromJson(value: unknown, plans: readonly StagePlan[], file: string): StageWeights[] {
  const parsed = WeightsFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ParallelError('STRATEGY', `weights file: ${issue.message}`, {
      where: `${file} $.${issue.path.join('.')}`,
      fix: 'see `webgpu-parallel run --help`; --save-weights writes a file of this form',
    });
  }
  return plans.map((plan) => {
    const entry = parsed.data.stages[plan.spec.name];
    const where = `${file} $.stages.${plan.spec.name}`;
    if (!entry)
      throw new ParallelError('STRATEGY', `weights file has no stage '${plan.spec.name}'`, { where });
    for (const [key, length] of Object.entries(chainKind(plan.kind).weightLengths(plan))) {
      const got = entry[key as keyof typeof entry]?.length;
      if (got !== length) {
        throw new ParallelError(
          'SHAPE',
          `weights for '${plan.spec.name}'.${key} hold ${got ?? 'no'} values; the stage needs ${length}`,
          {
            where: `${where}.${key}`,
          },
        );
      }
    }
    const f32 = (x: number[] | undefined) => (x ? Float32Array.from(x) : undefined);
    return { w: Float32Array.from(entry.w), b: f32(entry.b), gamma: f32(entry.gamma), beta: f32(entry.beta) };
  });
}

export function weightsToJson(weights: readonly StageWeights[], plans: readonly StagePlan[]): unknown {
  const stages: Record<string, Record<string, number[]>> = {};
  plans.forEach((plan, i) => {
    const w = weights[i]!;
    const entry: Record<string, number[]> = { w: Array.from(w.w) };
    for (const key of ['b', 'gamma', 'beta'] as const) if (w[key]) entry[key] = Array.from(w[key]!);
    stages[plan.spec.name] = entry;
  });
  return { stages };
}
