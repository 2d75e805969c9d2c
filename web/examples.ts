import balanced from '../examples/balanced-3dev.json' with { type: 'json' };
import dataParallel from '../examples/data-parallel-agg.json' with { type: 'json' };
import megatron from '../examples/megatron-mlp.json' with { type: 'json' };
import seedFits from '../examples/seed-fits.json' with { type: 'json' };
import seedStrategy from '../examples/seed-strategy.json' with { type: 'json' };
import vocabParallel from '../examples/vocab-parallel.json' with { type: 'json' };

/** The chain examples the page offers, bundled from examples/ (the same files the CLI runs). */
export const CHAIN_EXAMPLES: Readonly<Record<string, Record<string, unknown>>> = {
  'seed-fits': seedFits,
  'seed-strategy': seedStrategy,
  'balanced-3dev': balanced,
  'data-parallel-agg': dataParallel,
  'megatron-mlp': megatron,
  'vocab-parallel': vocabParallel,
};

/** Presets the page offers in the `model: {preset}` form; bigger ones run too, given time. */
export const MODEL_PRESETS: readonly string[] = ['llama-tiny', 'llama-small', 'mixtral-tiny'];
