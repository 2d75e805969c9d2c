import { z } from 'zod';
import { ParallelError } from '../errors.js';
import { readConfigFile } from './config-file.js';

/** A Llama (or Mixtral) model's shape, from a Hugging Face `config.json`, in this library's names. */
export interface LlamaConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
  /** Mixtral: experts per layer, each a gated MLP of `intermediateSize`. */
  readonly numExperts?: number;
  /** Mixtral: experts each token is routed to. */
  readonly expertsPerToken?: number;
}

const count = z.number().int().positive();
// Some exporters write `null` for an absent optional field; both mean "use the default".
const HfConfigSchema = z.looseObject({
  vocab_size: count,
  hidden_size: count,
  intermediate_size: count,
  num_hidden_layers: count,
  num_attention_heads: count,
  num_key_value_heads: count.nullish(),
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().positive().nullish(),
  max_position_embeddings: count.nullish(),
  tie_word_embeddings: z.boolean().nullish(),
  head_dim: count.nullish(),
  architectures: z.array(z.string()).nullish(),
  model_type: z.string().nullish(),
  num_local_experts: count.nullish(),
  num_experts_per_tok: count.nullish(),
});

const FIX = 'fix config.json (it should be the one saved with these weights by transformers)';

function configError(where: string, path: string, message: string, fix = FIX): ParallelError {
  return new ParallelError('CHECKPOINT', `${where}: ${path}: ${message}`, { where: `${where} ${path}`, fix });
}

function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let value = json;
  for (const key of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  return value;
}

function issueText(issue: z.core.$ZodIssue, json: unknown): string {
  const value = valueAt(json, issue.path);
  if (issue.code === 'invalid_type' && value === undefined && issue.path.length > 0) {
    return `missing; a Llama config needs it (expected ${issue.expected})`;
  }
  if (issue.code === 'too_small') return `must be positive, got ${JSON.stringify(value)}`;
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${JSON.stringify(value)}`;
  return issue.message;
}

/** Checks a parsed `config.json` and converts it; errors name `where` (the file) and the JSON path. */
export function parseLlamaConfig(json: unknown, where: string): LlamaConfig {
  const parsed = HfConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw configError(where, ['$', ...issue.path.map(String)].join('.'), issueText(issue, json));
  }
  const hf = parsed.data;
  const numHeads = hf.num_attention_heads;
  const numKvHeads = hf.num_key_value_heads ?? numHeads;
  if (hf.head_dim == null && hf.hidden_size % numHeads !== 0) {
    throw configError(
      where,
      '$.num_attention_heads',
      `${numHeads} heads do not divide hidden_size ${hf.hidden_size}`,
      'use a head count that divides hidden_size, or set head_dim',
    );
  }
  const headDim = hf.head_dim ?? hf.hidden_size / numHeads;
  if (headDim % 2 !== 0) {
    throw configError(
      where,
      hf.head_dim == null ? '$.num_attention_heads' : '$.head_dim',
      `head dim ${headDim} is odd; rotary embeddings rotate pairs of values`,
    );
  }
  if (numHeads % numKvHeads !== 0) {
    throw configError(
      where,
      '$.num_key_value_heads',
      `${numKvHeads} KV heads do not divide num_attention_heads ${numHeads}`,
      'grouped-query attention needs num_attention_heads to be a multiple of num_key_value_heads',
    );
  }
  const config: LlamaConfig = {
    vocabSize: hf.vocab_size,
    hiddenSize: hf.hidden_size,
    intermediateSize: hf.intermediate_size,
    numLayers: hf.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: hf.rms_norm_eps ?? 1e-6,
    ropeTheta: hf.rope_theta ?? 10000,
    maxPositions: hf.max_position_embeddings ?? 2048,
    tieWordEmbeddings: hf.tie_word_embeddings ?? false,
  };
  const experts = hf.num_local_experts;
  const perToken = hf.num_experts_per_tok;
  if (experts == null && perToken == null) return config;
  if (experts == null || perToken == null) {
    const missing = experts == null ? '$.num_local_experts' : '$.num_experts_per_tok';
    throw configError(
      where,
      missing,
      'missing; a Mixtral config sets num_local_experts and num_experts_per_tok',
    );
  }
  if (perToken > experts) {
    throw configError(
      where,
      '$.num_experts_per_tok',
      `${perToken} experts per token, but only num_local_experts ${experts} exist`,
    );
  }
  return { ...config, numExperts: experts, expertsPerToken: perToken };
}

/** Reads and checks `dir/config.json`. */
export function readLlamaConfig(dir: string): LlamaConfig {
  const { file, text } = readConfigFile(dir);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw configError(file, '$', `not JSON (${(cause as Error).message})`);
  }
  return parseLlamaConfig(json, file);
}

/** The Hugging Face `config.json` for `config`; `parseLlamaConfig` gives `config` back. */
export function toHfConfig(config: LlamaConfig): Record<string, unknown> {
  const moe = config.numExperts !== undefined;
  const hf: Record<string, unknown> = {
    architectures: [moe ? 'MixtralForCausalLM' : 'LlamaForCausalLM'],
    model_type: moe ? 'mixtral' : 'llama',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    hidden_act: 'silu',
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    max_position_embeddings: config.maxPositions,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: 'float32',
  };
  if (moe) {
    hf.num_local_experts = config.numExperts;
    hf.num_experts_per_tok = config.expertsPerToken;
  }
  return hf;
}
