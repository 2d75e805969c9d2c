import { ParallelError } from '../errors.js';
import { formatBytes } from '../format.js';
import { freeCache, type LlamaModel, type SequenceCache, toIds } from './llama/llama-model.js';
import type { BatchSequence, StageResult } from './llama/stage.js';

export interface GenerateOptions {
  readonly maxNewTokens: number;
  /** Generation of a sequence ends after it produces one of these ids (the id is kept in its output). */
  readonly stopIds?: readonly number[];
  /** Microbatches per step through the pipeline; default one per stage (at most one per sequence). */
  readonly microbatches?: number;
  /** Called after the prefill and after every decode step, with the tokens made so far. */
  readonly onStep?: (done: number, total: number) => void;
}

export interface PhaseTiming {
  /** Tokens processed (prefill: prompt tokens; decode: tokens generated after the first). */
  readonly tokens: number;
  readonly ms: number;
  readonly tokensPerSecond: number;
}

export interface GenerationResult {
  /** The new ids of each prompt, in order (stop ids included). */
  readonly tokens: number[][];
  readonly prefill: PhaseTiming;
  readonly decode: PhaseTiming;
  /** Each device's KV-cache bytes for the whole batch. */
  readonly kvCacheBytes: ReadonlyMap<number, number>;
}

function timing(tokens: number, ms: number): PhaseTiming {
  return { tokens, ms, tokensPerSecond: ms > 0 ? (tokens * 1000) / ms : 0 };
}

/**
 * Greedy generation: the prompts (unequal lengths allowed) are prefilled together, each into a KV cache
 * sized for its prompt plus `maxNewTokens`; then every step feeds each unfinished sequence its last token.
 * The caches' bytes are checked against every device's budget before anything is allocated.
 */
export async function generate(
  model: LlamaModel,
  prompts: readonly (readonly number[] | Uint32Array)[],
  options: GenerateOptions,
): Promise<GenerationResult> {
  const { maxNewTokens } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 1) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `maxNewTokens must be a positive integer, got ${maxNewTokens}`,
      {
        where: 'maxNewTokens',
      },
    );
  }
  if (prompts.length === 0) throw new ParallelError('INVALID_ARGUMENT', 'generate needs at least one prompt');
  const ids = prompts.map((p) => toIds(p, model.config.vocabSize));
  const capacities = ids.map((p) => p.length + maxNewTokens);
  const longest = Math.max(...capacities);
  if (longest > model.config.maxPositions) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `a prompt plus ${maxNewTokens} new tokens needs ${longest} positions, the model has ${model.config.maxPositions}`,
      { where: 'max_position_embeddings', fix: 'shorten the prompt or ask for fewer new tokens' },
    );
  }
  const kvCacheBytes = checkCacheFits(model, capacities);
  const stop = new Set(options.stopIds ?? []);
  const caches: SequenceCache[] = [];
  try {
    for (const [i, capacity] of capacities.entries()) caches.push(model.newCache(capacity, `kv${i}`));
    const out: number[][] = ids.map(() => []);
    const lengths = ids.map((p) => p.length);
    const total = ids.length * maxNewTokens;
    let made = 0;
    const started = performance.now();
    const first = await model.run(
      ids.map((p, i) => ({ ids: p, position: 0, cache: caches[i]!.layers })),
      'last-greedy',
      options.microbatches,
    );
    for (const [i, r] of first.entries()) out[i]!.push(idOf(r));
    made += ids.length;
    const prefillMs = performance.now() - started;
    options.onStep?.(made, total);
    const decodeStart = performance.now();
    let decoded = 0;
    for (;;) {
      const active = out
        .map((tokens, i) => ({ tokens, i }))
        .filter(({ tokens }) => tokens.length < maxNewTokens && !stop.has(tokens[tokens.length - 1]!));
      if (active.length === 0) break;
      const batch: BatchSequence[] = active.map(({ tokens, i }) => ({
        ids: Uint32Array.of(tokens[tokens.length - 1]!),
        position: lengths[i]! + tokens.length - 1,
        cache: caches[i]!.layers,
      }));
      const next = await model.run(batch, 'last-greedy', options.microbatches);
      for (const [j, { tokens }] of active.entries()) tokens.push(idOf(next[j]!));
      decoded += active.length;
      made += active.length;
      options.onStep?.(made, total);
    }
    const promptTokens = ids.reduce((n, p) => n + p.length, 0);
    return {
      tokens: out,
      prefill: timing(promptTokens, prefillMs),
      decode: timing(decoded, performance.now() - decodeStart),
      kvCacheBytes,
    };
  } finally {
    for (const c of caches) freeCache(c);
  }
}

function idOf(result: StageResult): number {
  if (result.kind !== 'ids') throw new Error('a greedy step gave logits');
  return result.ids[0]!;
}

/** Refuses, before the run, a batch whose KV caches would not fit some device's budget, naming it. */
function checkCacheFits(model: LlamaModel, capacities: readonly number[]): Map<number, number> {
  const need = new Map<number, number>();
  for (const c of capacities) {
    for (const [id, bytes] of model.cacheBytesPerDevice(c)) need.set(id, (need.get(id) ?? 0) + bytes);
  }
  for (const device of model.group.devices) {
    const bytes = need.get(device.id) ?? 0;
    const { budgetBytes, usedBytes } = device.ledger;
    if (usedBytes + bytes > budgetBytes) {
      throw new ParallelError(
        'MEMORY_BUDGET',
        `${device.name}: the KV cache needs ${formatBytes(bytes)}, but only ${formatBytes(budgetBytes - usedBytes)} of its ${formatBytes(budgetBytes)} budget is free`,
        {
          where: device.name,
          fix: 'generate fewer tokens or fewer prompts at once, or spread the model over more devices',
        },
      );
    }
  }
  return need;
}
