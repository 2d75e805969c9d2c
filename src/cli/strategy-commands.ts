import type { Command } from 'commander';
import { ParallelError } from '../errors.js';
import { TuningCache } from '../kernels/webgpu/tuning-cache.js';
import type { BackendChoice } from '../runtime/device-group.js';
import { formatFindings, hasErrors } from '../strategy/findings.js';
import { planStages } from '../strategy/model-plan.js';
import { randomWeights } from '../strategy/model-weights.js';
import { reportJson, reportMarkdown } from '../strategy/report.js';
import { runStrategy } from '../strategy/run-strategy.js';
import { strategyJsonSchema } from '../strategy/schema.js';
import { parseStrategyText, validateStrategy } from '../strategy/validate.js';
import { weightsFromJson, weightsToJson } from '../strategy/weights-file.js';
import { parseBytes } from './bytes.js';
import { readText, writeAtomically } from './files.js';
import { backendChoice, positiveInt } from './options.js';
import { progressBar } from './progress.js';

interface RunFlags {
  json?: boolean;
  out?: string;
  trace?: string;
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

/** Reads and validates a strategy file; prints the findings; returns the parsed value when it may run. */
function loadAndValidate(file: string, flags: { microbatches?: number; memoryCap?: number; json?: boolean }) {
  const parsed = parseStrategyText(readText(file));
  const result =
    parsed.findings.length > 0
      ? { strategy: null, plans: [], findings: parsed.findings }
      : validateStrategy(parsed.value, {
          microbatches: flags.microbatches,
          memoryCapBytes: flags.memoryCap,
        });
  return { value: parsed.value, ...result, ok: !hasErrors(result.findings) };
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
      const result = loadAndValidate(file, flags);
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
    .option(
      '--seed <n>',
      'seed of the random weights and token ids',
      (v) => positiveInt(String(Number(v) + 1)) - 1,
    )
    .option('--weights <file>', 'weights from a JSON file (as --save-weights writes) instead of random ones')
    .option('--save-weights <file>', 'write the weights of this run to a JSON file')
    .option('--no-baseline', 'skip the one-microbatch-at-a-time comparison run')
    .option('--no-progress', 'no progress bar')
    .action(async (file: string, flags: RunFlags) => {
      const checked = loadAndValidate(file, flags);
      if (!checked.ok) {
        process.stderr.write(formatFindings(file, checked.findings));
        process.stderr.write(`${file}: not valid; nothing was run\n`);
        process.exitCode = 1;
        return;
      }
      const plans = planStages(checked.strategy!);
      const weights = flags.weights
        ? weightsFromJson(parseJson(readText(flags.weights), flags.weights), plans, flags.weights)
        : randomWeights(plans, flags.seed ?? checked.strategy!.seed ?? 1);
      if (flags.saveWeights)
        writeAtomically(flags.saveWeights, JSON.stringify(weightsToJson(weights, plans)));
      const bar = flags.progress ? progressBar('running') : null;
      try {
        const run = await runStrategy(checked.value, {
          weights,
          microbatches: flags.microbatches,
          memoryCapBytes: flags.memoryCap,
          backend: flags.backend,
          adapters: flags.adapter,
          seed: flags.seed,
          sequentialBaseline: flags.baseline,
          tuningCache: TuningCache.inUserCache(),
          onProgress: (done, total) => bar?.update(done, total),
        });
        bar?.stop();
        const text = flags.json ? `${JSON.stringify(reportJson(run), null, 2)}\n` : reportMarkdown(run, file);
        if (flags.trace) writeAtomically(flags.trace, JSON.stringify(run.trace));
        if (flags.out) writeAtomically(flags.out, text);
        else process.stdout.write(text);
        if (run.maxAbsError > run.tolerance) process.exitCode = 2;
      } finally {
        bar?.stop();
      }
    });

  program
    .command('schema')
    .description('print the strategy file schema as JSON Schema (for editors)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(strategyJsonSchema(), null, 2)}\n`);
    });
}
