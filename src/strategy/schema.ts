import { z } from 'zod';
import { CHAIN_KIND_FIELDS, CHAIN_STAGE_NAMES } from './stages/registry.js';

/**
 * The strategy file, in the seed report's vocabulary, in one of two forms. A chain model of the seed's
 * kinds of stage (each kind in src/strategy/stages/: embedding, linear or expert, aggregation), with
 * explicit communications between them; or a real model (a preset or a checkpoint) whose stages are
 * ranges of decoder layers on device groups.
 */

const deviceId = z.number().int().min(0).max(1023);
const positive = z
  .number()
  .int()
  .positive()
  .max(1 << 30);

export const TensorParallelSchema = z
  .object({
    mode: z.enum(['column', 'row']).describe('column: W split on its output dim; row: on its input dim'),
    split_dim: z
      .number()
      .int()
      .min(0)
      .max(1)
      .describe('1 for column-parallel, 0 for row-parallel (of W [in, out])'),
    devices: z.array(deviceId).min(1).describe('the ordered device group'),
    sizes: z.array(positive).optional().describe('explicit shard sizes per device, summing to the split dim'),
    input_is_parallel: z
      .boolean()
      .optional()
      .describe('row mode: the input arrives sharded on its last dim (no scatter needed)'),
  })
  .strict();

export const DataParallelSchema = z
  .object({
    replicas: positive.describe('how many copies of the stage; microbatches go to them in turn'),
    devices: z.array(deviceId).min(1),
  })
  .strict();

/** A stage of a chain model: the fields every kind takes, then each kind's own (see stages/registry.ts). */
export const StageSchema = z
  .object({
    name: z.string().min(1).max(128),
    kind: z.enum(CHAIN_STAGE_NAMES),
    device: deviceId.optional().describe('the device the stage lives on when it is not split'),
    input: z
      .string()
      .optional()
      .describe('the stage whose output this stage reads (default: the previous stage)'),
    tensor_parallel: TensorParallelSchema.optional(),
    data_parallel: DataParallelSchema.optional(),
    ...CHAIN_KIND_FIELDS,
  })
  .strict();

export const CommunicationSchema = z
  .object({
    name: z.string().min(1).max(128),
    op: z.enum(['all_gather', 'all_reduce', 'reduce', 'reduce_scatter', 'broadcast', 'scatter', 'send_recv']),
    from: z.array(deviceId).min(1),
    to: z.array(deviceId).min(1),
  })
  .strict();

const HardwareSchema = z
  .object({
    device_count: positive.max(64),
    // One number with one set of limits: a string ("64MiB") is said to be one, not "Invalid input".
    memory_per_device_bytes: z
      .number({
        error: (issue) =>
          issue.code !== 'invalid_type' || typeof issue.input === 'number'
            ? undefined
            : issue.input === undefined
              ? 'memory_per_device_bytes is required'
              : `memory_per_device_bytes must be a number of bytes (e.g. 67108864 for 64 MiB), got ${JSON.stringify(issue.input)}; units such as "64MiB" are taken by --memory-cap only`,
      })
      .positive()
      .max(2 ** 46, 'memory_per_device_bytes must be at most 2^46 bytes (64 TiB)')
      // After the limit, not as .int(): that adds a safe-integer limit of its own, a second message.
      .refine(Number.isInteger, 'memory_per_device_bytes must be a whole number of bytes'),
  })
  .strict();

/** Which devices each rank of a world owns (`launch --nprocs N -- run FILE`); absent: an even split. */
const RanksSchema = z
  .array(z.array(deviceId).min(1).max(64))
  .min(1)
  .max(64)
  .describe(
    'device ids per rank, e.g. [[0], [1], [2]] (absent: device_count split evenly over WORLD_SIZE, in order)',
  );

const ClaimsSchema = z
  .object({
    gpu_utilization: z.number().min(0).max(1).optional().describe('claimed fraction of device time busy'),
    samples_per_second: z.number().positive().optional(),
  })
  .strict();

/** A strategy for a chain model of the seed's kinds of stage (embedding, linear/expert, aggregation). */
export const StrategySchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().min(1).max(128).optional(),
    hardware: HardwareSchema,
    model: z
      .object({
        vocab_size: positive,
        hidden_size: positive,
        ffn_size: positive.describe('default output width of linear/expert stages'),
        seq_len: positive,
        output_size: positive.describe('width of the aggregation stage output projection'),
      })
      .strict(),
    batch: z
      .object({
        batch_size: positive.describe('sequences per step'),
        microbatches: positive,
      })
      .strict(),
    stages: z.array(StageSchema).min(1).max(64),
    ranks: RanksSchema.optional(),
    communications: z.array(CommunicationSchema).max(128).default([]),
    claims: ClaimsSchema.optional(),
    seed: z.number().int().min(0).optional().describe('seed for the random weights'),
  })
  .strict();

/**
 * A pipeline stage of a real transformer (Llama, Mixtral): a contiguous range of decoder layers on a
 * device group, tensor-parallel inside (whole heads per device, MLP columns), experts placed on expert
 * groups in MoE layers. The first stage also holds the embedding, the last the final norm and the head.
 */
export const ModelStageSchema = z
  .object({
    name: z.string().min(1).max(128),
    kind: z.enum(['decoder']).default('decoder').describe('a range of decoder layers'),
    devices: z.array(deviceId).min(1).describe('the tensor-parallel group of the stage, in order'),
    layers: z
      .tuple([z.number().int().min(0).max(4095), z.number().int().min(0).max(4095)])
      .describe('the first and the last layer the stage runs, both included: [0, 1] is layers 0 and 1'),
    heads: z
      .array(positive)
      .optional()
      .describe('query heads per device (uneven on purpose); default balanced'),
    intermediate: z
      .array(positive)
      .optional()
      .describe('MLP intermediate columns per device; default balanced'),
    ep: positive.max(64).optional().describe('MoE layers: expert groups the devices split into (default 1)'),
    experts: z
      .array(z.array(z.number().int().min(0).max(4095)))
      .optional()
      .describe('MoE layers: the experts each expert group holds; default as even as they divide'),
  })
  .strict();

/** A strategy for a real model: an embedded preset or a checkpoint folder, stages over layer ranges. */
export const ModelStrategySchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().min(1).max(128).optional(),
    hardware: HardwareSchema,
    model: z
      .object({
        preset: z
          .string()
          .min(1)
          .max(128)
          .optional()
          .describe('an embedded preset (random weights from seed)'),
        checkpoint: z.string().min(1).max(4096).optional().describe('a Hugging Face checkpoint folder'),
        capacity_factor: z
          .number()
          .positive()
          .max(64)
          .optional()
          .describe(
            'MoE: each expert takes at most ceil(f * tokens * k / experts) assignments; default dropless',
          ),
      })
      .strict(),
    batch: z
      .object({
        batch_size: positive.describe('sequences per step'),
        seq_len: positive.max(1 << 16).describe('tokens per sequence'),
        microbatches: positive,
      })
      .strict(),
    stages: z.array(ModelStageSchema).min(1).max(64),
    ranks: RanksSchema.optional(),
    communications: z
      .array(CommunicationSchema)
      .max(128)
      .optional()
      .describe('between stages (default: send_recv of the hidden states from each group to the next)'),
    claims: ClaimsSchema.optional(),
    seed: z.number().int().min(0).optional().describe('seed for the random weights and token ids'),
  })
  .strict();

export type Strategy = z.infer<typeof StrategySchema>;
/** The seed's chain form of a strategy (the same as `Strategy`). */
export type ChainStrategy = Strategy;
export type ModelStrategy = z.infer<typeof ModelStrategySchema>;
export type StageSpec = z.infer<typeof StageSchema>;
export type ModelStageSpec = z.infer<typeof ModelStageSchema>;
export type CommunicationSpec = z.infer<typeof CommunicationSchema>;
export type TensorParallelSpec = z.infer<typeof TensorParallelSchema>;

/** A file is a model strategy when its model names a preset or a checkpoint rather than a chain's sizes. */
export function isModelStrategy(value: unknown): boolean {
  const model = (value as { model?: unknown } | null)?.model;
  return typeof model === 'object' && model !== null && ('preset' in model || 'checkpoint' in model);
}

/**
 * The schema as JSON Schema, for editors: either form of a strategy (`anyOf`), under the properties
 * both forms have, so a tool that reads only the top level still finds the stages.
 */
export function strategyJsonSchema(): Record<string, unknown> {
  const chain = z.toJSONSchema(StrategySchema, { io: 'input' }) as Record<string, unknown>;
  const model = z.toJSONSchema(ModelStrategySchema, { io: 'input' }) as Record<string, unknown>;
  const { $schema, ...chainForm } = chain;
  const { $schema: _, ...modelForm } = model;
  return {
    $schema,
    description:
      "A parallel strategy: a chain of the seed's stage kinds with communications, or a real model (preset or checkpoint) over layer ranges",
    type: 'object',
    properties: {
      hardware: { type: 'object' },
      model: { type: 'object' },
      batch: { type: 'object' },
      stages: {
        type: 'array',
        description: 'chain stages (kind embedding, linear/expert, aggregation) or decoder layer ranges',
      },
      communications: { type: 'array' },
    },
    required: ['hardware', 'model', 'batch', 'stages'],
    anyOf: [chainForm, modelForm],
  };
}
