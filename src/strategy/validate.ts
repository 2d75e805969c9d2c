import type { z } from 'zod';
import { formatBytes } from '../format.js';
import type { Finding } from './findings.js';
import { estimateMemory } from './memory-estimate.js';
import {
  applyCommunication,
  directHandoff,
  evenSizes,
  type Layout,
  matchCommunication,
  type PipelineStage,
  planStages,
  type StagePlan,
  sameDevices,
  suggestCommunication,
} from './model-plan.js';
import { checkRanksSection } from './rank-plan.js';
import { loadWord } from './recommend.js';
import { type CommunicationSpec, isModelStrategy, type Strategy, StrategySchema } from './schema.js';
import { chainKind } from './stages/registry.js';
import { validateModelStrategy } from './validate-model.js';
import { estimateWork } from './work-estimate.js';

export interface ValidationResult {
  readonly strategy: Strategy | null;
  readonly plans: readonly StagePlan[];
  readonly findings: readonly Finding[];
}

function jsonPath(path: readonly PropertyKey[]): string {
  return `$${path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`;
}

export function schemaFindings(error: z.ZodError): Finding[] {
  return error.issues.map((issue) => ({
    code: `SCHEMA_${issue.code.toUpperCase()}`,
    severity: 'error' as const,
    path: jsonPath(issue.path),
    message: issue.message,
    fix:
      issue.code === 'unrecognized_keys'
        ? 'remove the key, or check its spelling against `webgpu-parallel schema`'
        : 'see `webgpu-parallel schema` for the expected form',
  }));
}

/** Parses JSON text; a syntax error becomes a finding with the line and column. */
export function parseStrategyText(text: string): { value: unknown; findings: Finding[] } {
  if (text.startsWith('\uFEFF')) {
    return {
      value: undefined,
      findings: [
        {
          code: 'JSON_BOM',
          severity: 'error',
          path: '$',
          message: 'the file starts with a UTF-8 byte order mark (EF BB BF), which JSON does not allow',
          fix: 'save the file as UTF-8 without a BOM (in most editors: "UTF-8", not "UTF-8 with BOM")',
        },
      ],
    };
  }
  try {
    return { value: JSON.parse(text), findings: [] };
  } catch (error) {
    // V8 quotes the whole text in some messages ("Unexpected token ..., "<text>" is not valid JSON").
    const message = (error instanceof Error ? error.message : String(error)).replace(
      /, ".*" is not valid JSON$/s,
      '',
    );
    const at = /position (\d+)/.exec(message);
    const offset = at ? Number(at[1]) : jsonErrorOffset(text);
    let where = '';
    if (offset >= 0) {
      const before = text.slice(0, offset);
      where = ` (line ${before.split('\n').length}, column ${before.length - before.lastIndexOf('\n')})`;
    }
    return {
      value: undefined,
      findings: [
        {
          code: 'JSON_SYNTAX',
          severity: 'error',
          path: '$',
          message: `not valid JSON${where}: ${message}`,
          fix: 'fix the JSON syntax',
        },
      ],
    };
  }
}

/** Offset of the first character at which `text` stops being JSON, or -1: Node 20's V8 omits it for an unexpected token. */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (c: string) => (text[i] === c ? i++ : fail());
  const word = (w: string) => {
    for (const c of w) expect(c);
  };
  const string = () => {
    expect('"');
    while (text[i] !== '"') {
      if (i >= text.length || text.charCodeAt(i) < 0x20) fail();
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
  };
  const list = (close: string, item: () => void) => {
    i++;
    ws();
    if (text[i] !== close) {
      for (;;) {
        item();
        ws();
        if (text[i] === close) break;
        expect(',');
        ws();
      }
    }
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      list('}', () => {
        string();
        ws();
        expect(':');
        value();
      });
    } else if (c === '[') list(']', value);
    else if (c === '"') string();
    else if (c === 't' || c === 'f' || c === 'n') word(c === 't' ? 'true' : c === 'f' ? 'false' : 'null');
    else number();
  };
  const number = () => {
    const pattern = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    pattern.lastIndex = i;
    if (!pattern.test(text)) fail();
    i = pattern.lastIndex;
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
  } catch (at) {
    return typeof at === 'number' ? Math.min(at, text.length) : -1;
  }
  return -1;
}

/** Checks of device ids against the device count, for stage and communication groups. */
export function deviceChecks(count: number, add: (f: Finding) => void) {
  const checkId = (id: number, path: string) => {
    if (id >= count) {
      add({
        code: 'DEVICE_OUT_OF_RANGE',
        severity: 'error',
        path,
        message: `device ${id} does not exist: hardware.device_count is ${count} (ids 0..${count - 1})`,
        fix: `use an id below ${count}, or raise hardware.device_count`,
      });
    }
  };
  const checkIds = (ids: readonly number[], path: string) => {
    for (const [i, id] of ids.entries()) checkId(id, `${path}[${i}]`);
    if (new Set(ids).size !== ids.length) {
      add({
        code: 'DUPLICATE_DEVICE',
        severity: 'error',
        path,
        message: `device group [${ids.join(', ')}] lists a device twice`,
        fix: 'list each device once',
      });
    }
  };
  return { checkId, checkIds };
}

/** The CLI's --memory-cap and --microbatches over a parsed strategy of either form. */
export function withOverrides<
  S extends { hardware: { memory_per_device_bytes: number }; batch: { microbatches: number } },
>(strategy: S, options: { memoryCapBytes?: number; microbatches?: number }): S {
  let out = strategy;
  if (options.memoryCapBytes !== undefined)
    out = { ...out, hardware: { ...out.hardware, memory_per_device_bytes: options.memoryCapBytes } };
  if (options.microbatches !== undefined)
    out = { ...out, batch: { ...out.batch, microbatches: options.microbatches } };
  return out;
}

/** Every check: the schema, then devices, splits, layouts across communications, batch and memory. */
export function validateStrategy(
  value: unknown,
  options: { memoryCapBytes?: number; microbatches?: number } = {},
): ValidationResult {
  // The other form of file has its own checks (validate-model.ts); `checkStrategy` takes either form.
  if (isModelStrategy(value))
    return { strategy: null, plans: [], findings: validateModelStrategy(value).findings };
  const parsed = StrategySchema.safeParse(value);
  if (!parsed.success) return { strategy: null, plans: [], findings: schemaFindings(parsed.error) };
  const strategy = withOverrides(parsed.data, options);
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const count = strategy.hardware.device_count;
  const { checkId, checkIds } = deviceChecks(count, add);

  const names = new Map<string, string>();
  for (const [kind, list] of [
    ['stages', strategy.stages],
    ['communications', strategy.communications],
  ] as const) {
    list.forEach((item, i) => {
      const path = `$.${kind}[${i}].name`;
      const first = names.get(item.name);
      if (first)
        add({
          code: 'DUPLICATE_NAME',
          severity: 'error',
          path,
          message: `name '${item.name}' is already used at ${first}`,
          fix: 'give every stage and communication its own name',
        });
      else names.set(item.name, path);
    });
  }

  strategy.stages.forEach((stage, i) => {
    const path = `$.stages[${i}]`;
    if (stage.device !== undefined) checkId(stage.device, `${path}.device`);
    const tp = stage.tensor_parallel;
    if (tp) {
      checkIds(tp.devices, `${path}.tensor_parallel.devices`);
      const wanted = tp.mode === 'column' ? 1 : 0;
      if (tp.split_dim !== wanted) {
        add({
          code: 'SPLIT_DIM_MODE',
          severity: 'error',
          path: `${path}.tensor_parallel.split_dim`,
          message: `${tp.mode}-parallel splits W[in, out] on dim ${wanted}, but split_dim is ${tp.split_dim}`,
          fix: `set split_dim to ${wanted}, or mode to ${tp.mode === 'column' ? 'row' : 'column'}`,
        });
      }
      if (stage.device !== undefined && !tp.devices.includes(stage.device)) {
        add({
          code: 'STAGE_DEVICE_OUTSIDE_GROUP',
          severity: 'warning',
          path: `${path}.device`,
          message: `device ${stage.device} is not in the tensor-parallel group [${tp.devices.join(', ')}]; the group decides where the stage runs`,
          fix: 'drop device, or set it to a member of the group',
        });
      }
    }
    if (stage.data_parallel) {
      const dp = stage.data_parallel;
      checkIds(dp.devices, `${path}.data_parallel.devices`);
      if (dp.replicas !== dp.devices.length) {
        add({
          code: 'REPLICA_COUNT',
          severity: 'error',
          path: `${path}.data_parallel.replicas`,
          message: `replicas is ${dp.replicas} but ${dp.devices.length} devices are listed`,
          fix: 'list one device per replica',
        });
      }
      if (dp.replicas === 1) {
        add({
          code: 'SINGLE_REPLICA',
          severity: 'warning',
          path: `${path}.data_parallel`,
          message: 'data parallel with 1 replica is a single device: nothing runs in parallel',
          fix: 'add replicas on other devices, or drop data_parallel and set device',
        });
      }
      if (stage.device !== undefined && !dp.devices.includes(stage.device)) {
        add({
          code: 'DEVICE_IGNORED',
          severity: 'warning',
          path: `${path}.device`,
          message: `device ${stage.device} is ignored: the stage runs on its data_parallel devices [${dp.devices.join(', ')}]`,
          fix: 'remove device, or put it in data_parallel.devices',
        });
      }
      if (tp)
        add({
          code: 'TP_AND_DP',
          severity: 'error',
          path,
          message: 'a stage is either tensor-parallel or data-parallel here, not both',
          fix: 'keep one of tensor_parallel and data_parallel',
        });
    }
    const kind = chainKind(stage.kind);
    kind.check(stage, path, add);
    if (kind.readsIds && i !== 0) {
      add({
        code: 'EMBEDDING_NOT_FIRST',
        severity: 'error',
        path: `${path}.kind`,
        message: `${stage.kind === 'embedding' ? 'an embedding' : `a stage of kind '${stage.kind}'`} reads token ids, so it must be the first stage`,
        fix: `move the ${stage.kind} stage first`,
      });
    }
    if (kind.final && i !== strategy.stages.length - 1) {
      add({
        code: 'AGGREGATION_NOT_LAST',
        severity: 'error',
        path: `${path}.kind`,
        message: `the ${stage.kind} stage produces the final output, so it must be the last stage`,
        fix: 'move it last',
      });
    }
    if (stage.input !== undefined && stage.input !== strategy.stages[i - 1]?.name) {
      const exists = strategy.stages.some((s) => s.name === stage.input);
      add({
        code: exists ? 'INPUT_NOT_PREVIOUS' : 'INPUT_UNKNOWN',
        severity: 'error',
        path: `${path}.input`,
        message: exists
          ? `stage input '${stage.input}' is not the stage right before it; only a chain of stages runs here`
          : `no stage is named '${stage.input}'`,
        fix: `set input to '${strategy.stages[i - 1]?.name ?? '(none: this is the first stage)'}' or drop it`,
      });
    }
  });
  const first = strategy.stages[0];
  if (first && !chainKind(first.kind).readsIds) {
    add({
      code: 'NO_EMBEDDING',
      severity: 'error',
      path: '$.stages[0].kind',
      message: 'the first stage must be an embedding: nothing else produces its input from token ids',
      fix: "add a stage of kind 'embedding' first",
    });
  }
  strategy.communications.forEach((c, i) => {
    checkIds(c.from, `$.communications[${i}].from`);
    checkIds(c.to, `$.communications[${i}].to`);
  });
  checkRanksSection(strategy, add);
  if (strategy.batch.batch_size % strategy.batch.microbatches !== 0) {
    add({
      code: 'BATCH_NOT_DIVISIBLE',
      severity: 'error',
      path: '$.batch.microbatches',
      message: `batch_size ${strategy.batch.batch_size} does not divide into ${strategy.batch.microbatches} microbatches`,
      fix: `use a divisor of ${strategy.batch.batch_size} (e.g. ${divisors(strategy.batch.batch_size).join(', ')})`,
    });
  }
  if (findings.some((f) => f.severity === 'error')) return { strategy, plans: [], findings };

  const plans = planStages(strategy);
  for (const plan of plans) {
    const tp = plan.spec.tensor_parallel;
    if (!tp) continue;
    const total = tp.mode === 'column' ? plan.outFeatures : plan.inFeatures;
    const dimName = chainKind(plan.kind).splitDimName(plan);
    if (tp.sizes) {
      const sum = tp.sizes.reduce((s, x) => s + x, 0);
      if (tp.sizes.length !== tp.devices.length || sum !== total) {
        add({
          code: 'SIZES_MISMATCH',
          severity: 'error',
          path: `${plan.path}.tensor_parallel.sizes`,
          message: `sizes [${tp.sizes.join(', ')}] must give one size per device (${tp.devices.length}) and add up to ${dimName} = ${total} (they add up to ${sum})`,
          fix: 'correct the sizes',
        });
      }
    } else if (total % tp.devices.length !== 0) {
      add({
        code: 'SPLIT_NOT_DIVISIBLE',
        severity: 'error',
        path: `${plan.path}.tensor_parallel`,
        message: `${dimName} = ${total} does not split evenly over ${tp.devices.length} devices`,
        fix: `give explicit sizes, e.g. "sizes": [${evenSizes(total, tp.devices.length).join(', ')}]`,
      });
    }
  }
  checkFlow(strategy, plans, add);
  checkLoad(strategy, plans, add);
  for (const m of estimateMemory(strategy, plans)) {
    const cap = strategy.hardware.memory_per_device_bytes;
    if (m.total > cap) {
      const top = m.items
        .slice(0, 3)
        .map((x) => `${x.label} ${formatBytes(x.bytes)}`)
        .join(', ');
      add({
        code: 'MEMORY_OVER_CAP',
        severity: 'error',
        path: '$.hardware.memory_per_device_bytes',
        message: `device ${m.device} needs ${m.total} bytes (${formatBytes(m.total)}: weights ${formatBytes(m.weights)}, activations ${formatBytes(m.activations)}, staging ${formatBytes(m.staging)}; largest: ${top}) but the cap is ${cap} bytes (${formatBytes(cap)})`,
        fix: `raise memory_per_device_bytes to at least ${m.total}, or shard the largest stage over more devices`,
      });
    }
  }
  return { strategy, plans, findings };
}

function divisors(n: number): number[] {
  return Array.from({ length: Math.min(n, 64) }, (_, i) => i + 1)
    .filter((d) => n % d === 0)
    .slice(-4);
}

/** Follows each stage's output through the communications to the next stage's devices. */
export function checkFlow(
  strategy: { readonly communications: readonly CommunicationSpec[] },
  plans: readonly PipelineStage[],
  add: (f: Finding) => void,
): void {
  const used = new Set<number>();
  for (let i = 0; i + 1 < plans.length; i++) {
    const producer = plans[i]!;
    const consumer = plans[i + 1]!;
    let layout: Layout = producer.output;
    const commIndex = matchCommunication(producer, consumer, strategy.communications, used);
    if (commIndex >= 0) {
      used.add(commIndex);
      const comm = strategy.communications[commIndex]!;
      const path = `$.communications[${commIndex}]`;
      const next = applyCommunication(comm.op, layout.placement, comm.to);
      if (!next) {
        const fix = suggestCommunication(layout.placement, consumer.accepts);
        add({
          code: 'COMMUNICATION_LAYOUT',
          severity: 'error',
          path: `${path}.op`,
          message: `${comm.op} cannot take the output of '${producer.spec.name}', which is ${describeLayout(layout)} (${producer.mode}-parallel)`,
          fix: fix ? `use "op": "${fix}"` : 'change the op',
        });
        continue;
      }
      layout = next;
      if (
        !sameDevices(comm.to, consumer.devices) &&
        !(comm.to.length === 1 && consumer.devices.length === 1 && comm.to[0] === consumer.devices[0])
      ) {
        add({
          code: 'COMMUNICATION_TARGET',
          severity: 'error',
          path: `${path}.to`,
          message: `'${comm.name}' delivers to [${comm.to.join(', ')}] but '${consumer.spec.name}' runs on [${consumer.devices.join(', ')}]`,
          fix: `set "to": [${consumer.devices.join(', ')}]`,
        });
        continue;
      }
    } else if (!directHandoff(producer, consumer)) {
      const fix = suggestCommunication(layout.placement, consumer.accepts);
      add({
        code: 'INPUT_NOT_PRODUCED',
        severity: 'error',
        path: `${consumer.path}`,
        message: `'${consumer.spec.name}' on [${consumer.devices.join(', ')}] needs its input ${consumer.accepts.join(' or ')}, but '${producer.spec.name}' leaves it ${describeLayout(layout)} and no communication moves it`,
        fix: `add {"op": "${fix}", "from": [${producer.devices.join(', ')}], "to": [${consumer.devices.join(', ')}]} to communications`,
      });
      continue;
    }
    if (!consumer.accepts.includes(layout.placement)) {
      const fix = suggestCommunication(producer.output.placement, consumer.accepts);
      add({
        code: 'COMMUNICATION_LAYOUT',
        severity: 'error',
        path: `$.communications[${commIndex}].op`,
        message: `'${consumer.spec.name}' needs its input ${consumer.accepts.join(' or ')}, but the communication leaves it ${describeLayout(layout)}`,
        fix: `use "op": "${fix}"`,
      });
    }
  }
  strategy.communications.forEach((c, j) => {
    if (!used.has(j)) {
      add({
        code: 'COMMUNICATION_UNUSED',
        severity: 'error',
        path: `$.communications[${j}].from`,
        message: `no stage runs on [${c.from.join(', ')}] to feed '${c.name}' (or an earlier communication already takes that output)`,
        fix: 'set from to the devices of the stage whose output it moves, or remove it',
      });
    }
  });
}

function describeLayout(layout: Layout): string {
  const what =
    layout.placement === 'shard'
      ? 'sharded on its last dim'
      : layout.placement === 'partial'
        ? 'partial sums'
        : 'replicated';
  return `${what} on [${layout.devices.join(', ')}]`;
}

/** Warnings for legal but wasteful strategies: idle devices, one device carrying several stages. */
function checkLoad(strategy: Strategy, plans: readonly StagePlan[], add: (f: Finding) => void): void {
  const stagesOn = new Map<number, string[]>();
  for (const plan of plans)
    for (const d of plan.devices) stagesOn.set(d, [...(stagesOn.get(d) ?? []), plan.spec.name]);
  for (let d = 0; d < strategy.hardware.device_count; d++) {
    const stages = stagesOn.get(d) ?? [];
    if (stages.length === 0) {
      add({
        code: 'DEVICE_IDLE',
        severity: 'warning',
        path: '$.hardware.device_count',
        message: `device ${d} runs no stage`,
        fix: 'give it a shard of a stage, or lower device_count',
      });
    } else if (stages.length > 1) {
      add({
        code: 'DEVICE_SHARED_BY_STAGES',
        severity: 'warning',
        path: '$.stages',
        message: `device ${d} serves ${stages.length} stages (${stages.join(', ')}): it works on up to ${stages.length} microbatches per step and may set the pipeline's pace (the run measures it)`,
        fix: 'move one of the shards to a less loaded device',
      });
    }
  }
  const work = estimateWork(strategy, plans);
  const busy = work.filter((w) => w > 0);
  const mean = busy.reduce((a, b) => a + b, 0) / Math.max(1, busy.length);
  const heaviest = work.indexOf(Math.max(...work));
  const words = work.map(
    (w, d) => `device ${d}: ${(w / 1e6).toFixed(1)} MFLOP (${loadWord(w, work[heaviest]!)})`,
  );
  if (busy.length > 1 && work[heaviest]! > 1.5 * mean) {
    add({
      code: 'LOAD_IMBALANCE',
      severity: 'warning',
      path: '$.stages',
      message: `estimated work per microbatch is uneven: ${words.join(', ')}; device ${heaviest} carries ${((work[heaviest]! / mean) * 100 - 100).toFixed(0)}% more than the mean and sets the pipeline's pace`,
      fix: `move work off device ${heaviest}: give it a smaller shard with tensor_parallel sizes, or move one of its stages`,
    });
  }
}
