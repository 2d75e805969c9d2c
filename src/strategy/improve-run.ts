import { checkStrategy } from './check-strategy.js';
import { hasErrors } from './findings.js';
import { deriveImprovement, type ImproveResult, probeMicrobatches } from './improve.js';
import { type RunOptions, runStrategy, type StrategyRun } from './run-strategy.js';

/**
 * Runs the strategy; runs it again, unchecked, at another microbatch count (the probe: two sizes split
 * every stage's and transfer's time into what each microbatch pays and what each token does), repeated as
 * the run is, since one probe run slowed by other work bends the whole fit; derives an improved strategy from both (see `deriveImprovement`); runs that in the same process
 * with the same options; and returns the runs side by side. Both full runs check their outputs as `run` does.
 */
export async function improveStrategy(file: unknown, options: RunOptions = {}): Promise<ImproveResult> {
  const before = await runStrategy(file, options);
  const probe = await probeRun(file, before, options);
  const derived = deriveImprovement(before, file, { baseDir: options.baseDir, probe: probe ?? undefined });
  if (!derived.improved) return { ...derived, before, after: null, speedup: null, probe };
  const after = await runStrategy(derived.improved, options);
  return { ...derived, before, after, speedup: before.pipelined.wallMs / after.pipelined.wallMs, probe };
}

async function probeRun(
  file: unknown,
  before: StrategyRun,
  options: RunOptions,
): Promise<StrategyRun | null> {
  const batch = before.strategy.batch;
  const m = probeMicrobatches(batch.batch_size, batch.microbatches);
  if (m === null) return null;
  const probeFile = { ...(file as object), batch: { ...batch, microbatches: m } };
  if (hasErrors(checkStrategy(probeFile, { baseDir: options.baseDir }).findings)) return null;
  return runStrategy(probeFile, { ...options, sequentialBaseline: false, checkOutputs: false });
}
