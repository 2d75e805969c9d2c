import { dirname } from 'node:path';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { initProcessGroup } from '../distributed/rendezvous.js';
import { isRankProcess, worldFromEnv } from '../distributed/world-options.js';
import { ParallelError } from '../errors.js';
import { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import { runHtml } from '../report/timeline-html.js';
import type { BackendChoice } from '../runtime/device-group.js';
import { checkStrategy, type StrategyCheck } from '../strategy/check-strategy.js';
import { type Finding, formatFindings, hasErrors } from '../strategy/findings.js';
import { improveJson, improveMarkdown } from '../strategy/improve-report.js';
import { improveStrategy } from '../strategy/improve-run.js';
import { randomWeights, type StageWeights } from '../strategy/model-weights.js';
import { runStrategyOnRanks } from '../strategy/rank-run.js';
import { reportJson, reportMarkdown } from '../strategy/report.js';
import { type RunOptions, runStrategy, type StrategyRun } from '../strategy/run-strategy.js';
import { strategyJsonSchema } from '../strategy/schema.js';
import { parseStrategyText } from '../strategy/validate.js';
import { weightsFromJson, weightsToJson } from '../strategy/weights-file.js';
import { parseBytes } from './bytes.js';
import { checkWritable, readText, writeAtomically } from './files.js';
import { backendChoice, nonNegativeInt, positiveInt } from './options.js';
import { progressBar } from './progress.js';

interface RunFlags {
  json?: boolean;
  out?: string;
  trace?: string;
  html?: string;
  microbatches?: number;
  memoryCap?: number;
  backend: BackendChoice;
  adapter: string[];
  seed?: number;
  baseline: boolean;
  progress: boolean;
  weights?: string;
  saveWeights?: string;
}

function parseJson(text: string, file: string): unknown {
  const parsed = parseStrategyText(text);
  const finding = parsed.findings[0];
  if (finding)
    throw new ParallelError('IO', `${file}: ${finding.message}`, { where: file, fix: finding.fix });
  return parsed.value;
}

/** Reads and validates a strategy file of either form; returns the parsed value and the check. */
function loadAndValidate(file: string, flags: { microbatches?: number; memoryCap?: number; json?: boolean }) {
  const parsed = parseStrategyText(readText(file));
  const result: StrategyCheck =
    parsed.findings.length > 0
      ? { family: 'chain', strategy: null, plans: [], findings: parsed.findings }
      : checkStrategy(parsed.value, {
          microbatches: flags.microbatches,
          memoryCapBytes: flags.memoryCap,
          baseDir: dirname(file),
        });
  return { value: parsed.value, check: result, findings: result.findings, ok: !hasErrors(result.findings) };
}

/** A file that does not validate is not run: its findings, one line saying so, exit 1. */
function refusedInvalid(file: string, checked: { ok: boolean; findings: readonly Finding[] }): boolean {
  if (checked.ok) return false;
  process.stderr.write(formatFindings(file, checked.findings));
  process.stderr.write(`${file}: not valid; nothing was run\n`);
  process.exitCode = 1;
  return true;
}

/** What `run` asks of the runner, in one process or as a rank. */
function runOptions(file: string, flags: RunFlags, weights?: StageWeights[]): RunOptions {
  return {
    weights,
    baseDir: dirname(file),
    microbatches: flags.microbatches,
    memoryCapBytes: flags.memoryCap,
    backend: flags.backend,
    adapters: flags.adapter,
    seed: flags.seed,
    sequentialBaseline: flags.baseline,
    tuningCache: TuningCache.inUserCache(),
  };
}

/** A chain strategy's weights: from --weights, or random from the seed; --save-weights writes them. */
function chainWeights(check: StrategyCheck, flags: RunFlags): StageWeights[] | undefined {
  if (check.family !== 'chain') {
    if (flags.weights || flags.saveWeights) {
      throw new ParallelError('INVALID_ARGUMENT', '--weights and --save-weights are for chain strategies', {
        where: flags.weights ? '--weights' : '--save-weights',
        fix: 'a model strategy takes its weights from model.preset (random, from seed) or model.checkpoint',
      });
    }
    return undefined;
  }
  const plans = check.plans;
  const weights = flags.weights
    ? weightsFromJson(parseJson(readText(flags.weights), flags.weights), plans, flags.weights)
    : randomWeights(plans, flags.seed ?? check.strategy!.seed ?? 1);
  if (flags.saveWeights) writeAtomically(flags.saveWeights, JSON.stringify(weightsToJson(weights, plans)));
  return weights;
}

export function addStrategyCommands(program: Command): void {
  program
    .command('validate <file>')
    .description(
      'check a strategy file: devices, splits, layouts across communications, batch, memory per device',
    )
    .option('--json', 'print the findings as JSON')
    .option('--microbatches <n>', 'override batch.microbatches', positiveInt)
    .option('--memory-cap <bytes>', 'override hardware.memory_per_device_bytes (e.g. 64MiB)', parseBytes)
    .action((file: string, flags: { json?: boolean; microbatches?: number; memoryCap?: number }) => {
      let result: ReturnType<typeof loadAndValidate>;
      try {
        result = loadAndValidate(file, flags);
      } catch (error) {
        // --json promises JSON on stdout, a file that cannot be read included.
        if (!flags.json || !(error instanceof ParallelError)) throw error;
        const { code, message, where, fix } = error;
        process.stdout.write(
          `${JSON.stringify({ file, valid: false, error: { code, message, where, fix } }, null, 2)}\n`,
        );
        process.exitCode = 1;
        return;
      }
      if (flags.json)
        process.stdout.write(
          `${JSON.stringify({ file, valid: result.ok, findings: result.findings }, null, 2)}\n`,
        );
      else
        process.stdout.write(
          `${formatFindings(file, result.findings)}${result.ok ? `${file}: valid\n` : `${file}: not valid\n`}`,
        );
      if (!result.ok) process.exitCode = 1;
    });

  program
    .command('run <file>')
    .description('validate, run on real devices with a microbatch pipeline, and report what was measured')
    .option('--json', 'print the report as JSON instead of Markdown')
    .option('-o, --out <file>', 'write the report to a file instead of stdout')
    .option('--trace <file>', 'write the timeline as a Chrome trace (open in Perfetto)')
    .option('--html <file>', 'write the timeline, utilization and memory bars as a self-contained HTML file')
    .option('--microbatches <n>', 'override batch.microbatches', positiveInt)
    .option('--memory-cap <bytes>', 'override hardware.memory_per_device_bytes (e.g. 64MiB)', parseBytes)
    .option(
      '--backend <name>',
      'webgpu, gpujs, cpu or auto (gpu.js where no WebGPU adapter answers)',
      backendChoice,
      'auto' as const,
    )
    .option(
      '--adapter <name>',
      'WebGPU adapter by name, once per device in turn (default: logical devices on one adapter)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--seed <n>', 'seed of the random weights and token ids', nonNegativeInt)
    .option('--weights <file>', 'weights from a JSON file (as --save-weights writes) instead of random ones')
    .option('--save-weights <file>', 'write the weights of this run to a JSON file')
    .option('--no-baseline', 'skip the one-microbatch-at-a-time comparison run')
    .option('--no-progress', 'no progress bar')
    .action(async (file: string, flags: RunFlags) => {
      const checked = loadAndValidate(file, flags);
      if (refusedInvalid(file, checked)) return;
      // Across ranks only rank 0 writes: the report, the trace and any --save-weights.
      const writer = !isRankProcess() || worldFromEnv().rank === 0;
      if (writer) {
        for (const [flag, path] of [
          ['-o', flags.out],
          ['--trace', flags.trace],
          ['--html', flags.html],
          ['--save-weights', flags.saveWeights],
        ] as const) {
          if (path) checkWritable(path, flag);
        }
      }
      const weights = chainWeights(checked.check, writer ? flags : { ...flags, saveWeights: undefined });
      if (isRankProcess()) {
        await runAsRank(checked.value, file, flags, weights);
        return;
      }
      const bar = flags.progress ? progressBar('running') : null;
      try {
        const run = await runStrategy(checked.value, {
          ...runOptions(file, flags, weights),
          onProgress: (done, total) => bar?.update(done, total),
        });
        bar?.stop();
        writeRun(run, file, flags);
      } finally {
        bar?.stop();
      }
    });

  addImproveCommand(program);

  program
    .command('schema')
    .description('print the strategy file schema as JSON Schema (for editors)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(strategyJsonSchema(), null, 2)}\n`);
    });
}

/** The report (stdout or `-o`) and the trace; exit 2 when an output check failed. */
function writeRun(run: StrategyRun, file: string, flags: RunFlags): void {
  const text = flags.json ? `${JSON.stringify(reportJson(run), null, 2)}\n` : reportMarkdown(run, file);
  if (flags.trace) writeAtomically(flags.trace, JSON.stringify(run.trace));
  if (flags.html) writeAtomically(flags.html, runHtml(run));
  if (flags.out) writeAtomically(flags.out, text);
  else process.stdout.write(text);
  if (!run.checks.every((c) => c.passed)) process.exitCode = 2;
}

/**
 * `run FILE` as a rank of `launch`: joins the world, runs this rank's part, and on rank 0 writes the
 * world's one report and trace; the other ranks write nothing. A failure breaks the whole world (every
 * rank then fails naming the culprit).
 */
async function runAsRank(value: unknown, file: string, flags: RunFlags, weights?: StageWeights[]) {
  // grpc-js logs its own line for a failed bind or a dropped peer; the typed error after it says more.
  setLogVerbosity(logVerbosity.NONE);
  const pg = await initProcessGroup(worldFromEnv());
  try {
    const run = await runStrategyOnRanks(value, pg, {
      ...runOptions(file, flags, weights),
      onDevicesOpened: (devices) =>
        process.stderr.write(
          `rank ${pg.rank} of ${pg.size}: devices [${devices.join(', ')}] open, running\n`,
        ),
    });
    if (run) writeRun(run, file, flags);
    await pg.close();
  } catch (error) {
    // A backstop: a rank that failed must exit even if some handle outlived the close.
    setTimeout(() => process.exit(process.exitCode ?? 1), 3000).unref();
    await pg.abort(error instanceof ParallelError ? error : new ParallelError('RANK_LOST', String(error)));
    throw error;
  }
}

/** Where `improve` writes the improved file by default: beside the original, `NAME.improved.json`. */
export function improvedPath(file: string): string {
  return file.replace(/(\.json)?$/i, '.improved.json');
}

function addImproveCommand(program: Command): void {
  program
    .command('improve <file>')
    .description(
      'run a strategy, derive a better one from what was measured, run that too, and report both side by side',
    )
    .option('-o, --out <file>', 'where to write the improved strategy (default: FILE.improved.json)')
    .option('--report <file>', 'write the report to a file instead of stdout')
    .option('--json', 'print the result as JSON instead of Markdown')
    .option('--backend <name>', 'webgpu, gpujs, cpu or auto', backendChoice, 'auto' as const)
    .option(
      '--adapter <name>',
      'WebGPU adapter by name, once per device in turn (default: logical devices on one adapter)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--repeats <n>', 'measured runs of each strategy (default 3)', positiveInt)
    .option('--no-progress', 'no progress bar')
    .action(async (file: string, flags: ImproveFlags) => {
      const checked = loadAndValidate(file, {});
      if (refusedInvalid(file, checked)) return;
      checkWritable(flags.out ?? improvedPath(file), '-o');
      if (flags.report) checkWritable(flags.report, '--report');
      const bar = flags.progress ? progressBar('measuring') : null;
      try {
        const result = await improveStrategy(checked.value, {
          backend: flags.backend,
          adapters: flags.adapter,
          repeats: flags.repeats,
          baseDir: dirname(file),
          tuningCache: TuningCache.inUserCache(),
          onProgress: (done, total) => bar?.update(done, total),
        });
        bar?.stop();
        const out = result.improved ? (flags.out ?? improvedPath(file)) : null;
        if (out) writeAtomically(out, `${JSON.stringify(result.improved, null, 2)}\n`);
        const text = flags.json
          ? `${JSON.stringify(improveJson(result, out), null, 2)}\n`
          : improveMarkdown(result, file, out);
        if (flags.report) writeAtomically(flags.report, text);
        else process.stdout.write(text);
        const runs = [result.before, ...(result.after ? [result.after] : [])];
        if (!runs.every((r) => r.checks.every((c) => c.passed))) process.exitCode = 2;
      } finally {
        bar?.stop();
      }
    });
}

interface ImproveFlags {
  out?: string;
  report?: string;
  json?: boolean;
  backend: BackendChoice;
  adapter: string[];
  repeats?: number;
  progress: boolean;
}
