import { type Command, InvalidArgumentError } from 'commander';
import { ParallelError } from '../errors.js';
import { formatBytes } from '../format.js';
import { generate } from '../models/generate.js';
import { LlamaModel } from '../models/llama/llama-model.js';
import { preset, presetNames, writeRandomCheckpoint } from '../models/presets.js';
import { describePlan, type ShardingPlan } from '../models/sharding-plan.js';
import type { ExpertLoadSummary } from '../parallel/expert-load.js';
import { type BackendChoice, DeviceGroup } from '../runtime/device-group.js';
import { unionMs } from '../strategy/measure.js';
import { parseBytes } from './bytes.js';
import { readText } from './files.js';
import { backendChoice, nonNegativeInt, positiveInt, positiveNumber } from './options.js';
import { progressBar } from './progress.js';

/** "1,2,3" -> [1, 2, 3]; repeated flags collect one prompt each. */
function idList(value: string, previous: number[][] = []): number[][] {
  const pieces = value.split(',').map((s) => s.trim());
  const ids = pieces.map(Number);
  if (pieces.some((s) => !/^\d+$/.test(s)) || ids.some((n) => !Number.isSafeInteger(n))) {
    throw new InvalidArgumentError(`'${value}' is not a comma-separated list of token ids (e.g. 1,2,3)`);
  }
  return [...previous, ids];
}

function dtypeOf(value: string): 'F32' | 'F16' | 'BF16' {
  const upper = value.toUpperCase();
  if (upper !== 'F32' && upper !== 'F16' && upper !== 'BF16') {
    throw new InvalidArgumentError(`'${value}' is not one of f32, f16, bf16`);
  }
  return upper;
}

interface GenerateFlags {
  promptIds?: number[][];
  maxNewTokens: number;
  stopIds?: number[][];
  devices?: number;
  tp?: number;
  pp: number;
  ep: number;
  capacityFactor?: number;
  plan?: string;
  microbatches?: number;
  backend: BackendChoice;
  memoryCap?: number;
  profile?: boolean;
  json?: boolean;
}

export function addModelCommands(program: Command): void {
  program
    .command('make-model')
    .description('write a random checkpoint (config.json + model.safetensors) of a named preset')
    .requiredOption('--preset <name>', `one of ${presetNames().join(', ')}`)
    .requiredOption('--out <dir>', 'the folder to write (must not hold a checkpoint already)')
    .option('--seed <n>', 'random seed', nonNegativeInt, 1)
    .option('--dtype <dtype>', 'f32, f16 or bf16', dtypeOf, 'F32' as const)
    .option(
      '--shard-bytes <bytes>',
      'split into files of about this size, with an index (e.g. 8MiB)',
      parseBytes,
    )
    .action(
      (flags: {
        preset: string;
        out: string;
        seed: number;
        dtype: 'F32' | 'F16' | 'BF16';
        shardBytes?: number;
      }) => {
        const config = preset(flags.preset);
        writeRandomCheckpoint(flags.out, config, {
          seed: flags.seed,
          dtype: flags.dtype,
          shardBytes: flags.shardBytes,
        });
        process.stdout.write(
          `${flags.out}: ${flags.preset} (${config.numLayers} layers, hidden ${config.hiddenSize}, vocab ${config.vocabSize}), ${flags.dtype}\n`,
        );
      },
    );

  program
    .command('generate <dir>')
    .description(
      'load a checkpoint sharded over devices, prefill the prompts and decode greedily with a KV cache',
    )
    .requiredOption('--prompt-ids <ids>', 'token ids of one prompt, e.g. 1,2,3 (repeat for a batch)', idList)
    .option('--max-new-tokens <n>', 'tokens to generate per prompt', positiveInt, 16)
    .option('--stop-ids <ids>', 'ids that end a sequence, e.g. 2', idList)
    .option('--devices <n>', 'devices to open (default: tp x pp)', positiveInt)
    .option('--tp <n>', 'devices of every stage, tensor-parallel (default: --ep, else 1)', positiveInt)
    .option('--pp <n>', 'pipeline stages (layers split evenly)', positiveInt, 1)
    .option(
      '--ep <n>',
      'Mixtral: expert groups per stage (divides --tp; each expert over --tp / --ep devices)',
      positiveInt,
      1,
    )
    .option(
      '--capacity-factor <f>',
      'Mixtral: each expert takes at most ceil(f · tokens · k / experts) per forward (default: dropless)',
      positiveNumber,
    )
    .option('--plan <file>', 'a JSON sharding plan: {"stages": [{"devices": [0, 1], "layers": 2}, ...]}')
    .option('--microbatches <n>', 'microbatches per pipeline step', positiveInt)
    .option('--backend <name>', 'webgpu, gpujs, cpu or auto', backendChoice, 'auto' as const)
    .option('--memory-cap <bytes>', 'memory budget per device (e.g. 64MiB)', parseBytes)
    .option('--profile', "record every kernel and report each device's busy time (slows the run a little)")
    .option('--json', 'print JSON')
    .action(async (dir: string, flags: GenerateFlags) => {
      const tp = flags.tp ?? flags.ep;
      const plan: ShardingPlan | { tp: number; pp: number; ep: number } = flags.plan
        ? readPlan(flags.plan)
        : { tp, pp: flags.pp, ep: flags.ep };
      const count =
        flags.devices ??
        ('stages' in plan ? Math.max(...plan.stages.flatMap((s) => s.devices)) + 1 : tp * flags.pp);
      const group = await DeviceGroup.open({
        count,
        backend: flags.backend,
        memoryBudgetBytes: flags.memoryCap,
      });
      const bar = flags.json ? null : progressBar('generate', 'tokens');
      try {
        const loadStart = performance.now();
        using model = await LlamaModel.load(group, dir, { plan, capacityFactor: flags.capacityFactor });
        const loadMs = performance.now() - loadStart;
        const paramBytes = group.devices.map((d) => d.ledger.usedBytes);
        for (const d of group.devices) d.enableProfiling(flags.profile ?? false);
        const result = await generate(model, flags.promptIds!, {
          maxNewTokens: flags.maxNewTokens,
          stopIds: flags.stopIds?.flat(),
          microbatches: flags.microbatches,
          onStep: (done, total) => bar?.update(done, total),
        });
        bar?.stop();
        const spans = flags.profile ? await Promise.all(group.devices.map((d) => d.takeSpans())) : null;
        const memory = group.devices.map((d, i) => ({
          device: d.name,
          parameterBytes: paramBytes[i]!,
          kvCacheBytes: result.kvCacheBytes.get(d.id) ?? 0,
          peakBytes: d.ledger.peakBytes,
          busyMs: spans ? unionMs(spans[i]!) : null,
        }));
        const summary = {
          model: dir,
          backend: group.backend,
          adapter: group.devices[0]!.adapter.name,
          plan: describePlan(model.stages.map((stage) => stage.spec)),
          loadMs,
          prompts: flags.promptIds,
          tokens: result.tokens,
          prefill: result.prefill,
          decode: result.decode,
          memory,
          experts: model.expertLoad?.summary() ?? null,
        };
        if (flags.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
        else process.stdout.write(formatGeneration(summary));
      } finally {
        bar?.stop();
        group.destroy();
      }
    });
}

/** A plan file: JSON with a `stages` array (each stage checked against the model when it loads). */
function readPlan(file: string): ShardingPlan {
  let value: unknown;
  try {
    value = JSON.parse(readText(file));
  } catch (cause) {
    throw new ParallelError('IO', `${file}: not JSON (${(cause as Error).message})`, { where: file });
  }
  const stages = (value as { stages?: unknown } | null)?.stages;
  if (
    !Array.isArray(stages) ||
    stages.some((s) => !Array.isArray(s?.devices) || typeof s?.layers !== 'number')
  ) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `${file}: $.stages must be a list of {"devices": [ids], "layers": n}`,
      {
        where: `${file}: $.stages`,
        fix: 'e.g. {"stages": [{"devices": [0, 1], "layers": 2}, {"devices": [2], "layers": 2}]}',
      },
    );
  }
  return value as ShardingPlan;
}

function formatGeneration(s: {
  model: string;
  backend: string;
  adapter: string;
  plan: string;
  loadMs: number;
  prompts?: number[][];
  tokens: number[][];
  prefill: { tokens: number; ms: number; tokensPerSecond: number };
  decode: { tokens: number; ms: number; tokensPerSecond: number };
  memory: {
    device: string;
    parameterBytes: number;
    kvCacheBytes: number;
    peakBytes: number;
    busyMs: number | null;
  }[];
  experts: ExpertLoadSummary | null;
}): string {
  const lines = [
    `model: ${s.model} on ${s.backend} (${s.adapter}), loaded in ${s.loadMs.toFixed(0)} ms`,
    `plan: ${s.plan}`,
    ...s.tokens.map((t, i) => `prompt ${i}: ${s.prompts?.[i]?.join(' ')} -> ${t.join(' ')}`),
    `prefill: ${s.prefill.tokens} tokens in ${s.prefill.ms.toFixed(1)} ms (${s.prefill.tokensPerSecond.toFixed(1)} tokens/s)`,
    `decode: ${s.decode.tokens} tokens in ${s.decode.ms.toFixed(1)} ms (${s.decode.tokensPerSecond.toFixed(1)} tokens/s)`,
    'memory per device:',
    ...s.memory.map(
      (m) =>
        `  ${m.device}: parameters ${formatBytes(m.parameterBytes)}, KV cache ${formatBytes(m.kvCacheBytes)}, peak ${formatBytes(m.peakBytes)}${m.busyMs === null ? '' : `, busy ${m.busyMs.toFixed(1)} ms`}`,
    ),
    ...(s.experts ? formatExpertLoad(s.experts) : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** The measured expert balance: per stage the load, the busiest group and expert, and moves that help. */
function formatExpertLoad(load: ExpertLoadSummary): string[] {
  const lines = [
    `experts: ${load.steps} layer forwards; all_to_all moved ${formatBytes(load.allToAllBytes)} through the host in ${load.allToAllMs.toFixed(1)} ms`,
  ];
  for (const st of load.stages) {
    const dropped = st.dropped.reduce((a, b) => a + b, 0);
    lines.push(
      `  stage ${st.stage}: tokens per expert ${st.perExpert.join(' ')}; per expert group ${st.perGroup.join(' ')}${dropped ? `; dropped ${st.dropped.join(' ')}` : ''}`,
      `  most loaded: [${st.busiestGroup.devices.join(', ')}] with ${st.busiestGroup.rows} rows; expert ${st.busiestExpert.expert} with ${st.busiestExpert.tokens} tokens`,
    );
    if (st.moves.length === 0) lines.push('  balance: no move of a whole expert lowers the busiest group');
    for (const m of st.moves) {
      lines.push(`  suggestion: move expert ${m.expert} from group ${m.fromGroup} to group ${m.toGroup}`);
    }
    if (st.moves.length > 0) {
      lines.push(
        `  (the busiest group's rows would fall from ${st.busiestGroup.rows} to ${st.maxGroupRowsAfter})`,
      );
    }
  }
  return lines;
}
