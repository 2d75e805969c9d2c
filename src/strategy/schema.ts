import { z } from 'zod';

/**
 * The strategy file, in the seed report's vocabulary. A model of three kinds of stage runs through it:
 * - embedding: ids [tokens] -> [tokens, hidden] (table [vocab, hidden]);
 * - linear (also called expert): [tokens, in] -> [tokens, out], Y = act(X W + b), W [in, out];
 * - aggregation: the final work, on one device or data-parallel replicas: the mean over each sequence,
 *   a layer norm, an output projection to `output_size` and a softmax: [tokens, in] -> [sequences, output].
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

export const StageSchema = z
  .object({
    name: z.string().min(1).max(128),
    kind: z.enum(['embedding', 'linear', 'expert', 'aggregation']),
    device: deviceId.optional().describe('the device the stage lives on when it is not split'),
    input: z
      .string()
      .optional()
      .describe('the stage whose output this stage reads (default: the previous stage)'),
    out_features: positive.optional().describe('linear/expert: output width (default: model.ffn_size)'),
    activation: z.enum(['none', 'relu', 'gelu']).optional(),
    tensor_parallel: TensorParallelSchema.optional(),
    data_parallel: DataParallelSchema.optional(),
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

export const StrategySchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().min(1).max(128).optional(),
    hardware: z
      .object({
        device_count: positive.max(64),
        memory_per_device_bytes: positive.max(2 ** 46).or(
          z
            .number()
            .int()
            .positive()
            .max(2 ** 46),
        ),
      })
      .strict(),
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
    communications: z.array(CommunicationSchema).max(128).default([]),
    claims: z
      .object({
        gpu_utilization: z.number().min(0).max(1).optional().describe('claimed fraction of device time busy'),
        samples_per_second: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    seed: z.number().int().min(0).optional().describe('seed for the random weights'),
  })
  .strict();

export type Strategy = z.infer<typeof StrategySchema>;
export type StageSpec = z.infer<typeof StageSchema>;
export type CommunicationSpec = z.infer<typeof CommunicationSchema>;
export type TensorParallelSpec = z.infer<typeof TensorParallelSchema>;

/** The schema as JSON Schema, for editors. */
export function strategyJsonSchema(): unknown {
  return z.toJSONSchema(StrategySchema, { io: 'input' });
}
