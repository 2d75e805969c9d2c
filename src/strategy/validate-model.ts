import { formatBytes } from '../format.js';
import type { LlamaConfig } from '../models/llama-config.js';
import type { Finding } from './findings.js';
import { estimateModelMemory, estimateModelWork } from './model-estimate.js';
import { type ModelSource, resolveModelSource } from './model-source.js';
import { type CommunicationSpec, type ModelStrategy, ModelStrategySchema } from './schema.js';
import { checkDecoderStage, type ModelStagePlan, planDecoderStages } from './stages/decoder.js';
import { checkFlow, deviceChecks, schemaFindings, withOverrides } from './validate.js';

export interface ModelValidation {
  readonly strategy: ModelStrategy | null;
  readonly source: ModelSource | null;
  readonly plans: readonly ModelStagePlan[];
  /** The communications between stages: the file's, or a send_recv from each group to the next. */
  readonly communications: readonly CommunicationSpec[];
  readonly findings: readonly Finding[];
}

export interface ModelValidateOptions {
  readonly memoryCapBytes?: number;
  readonly microbatches?: number;
  /** The folder a relative checkpoint path is read from (the strategy file's); default the working dir. */
  readonly baseDir?: string;
}

/** The hidden states leave each stage replicated on its group; the next stage reads them so on its own. */
export function defaultCommunications(plans: readonly ModelStagePlan[]): CommunicationSpec[] {
  return plans.slice(1).map((next, i) => ({
    name: `${plans[i]!.spec.name}_to_${next.spec.name}`,
    op: 'send_recv',
    from: [...plans[i]!.devices],
    to: [...next.devices],
  }));
}

/**
 * Every check of a model strategy: the schema; the model (a preset, or a checkpoint's config.json);
 * devices; layer ranges contiguous and complete; heads and KV heads against each stage's tensor-parallel
 * group; every expert placed once; batch and sequence length; communications between the groups; the
 * memory each device needs (weights, KV cache, activations, staging) against the cap; the load.
 */
export function validateModelStrategy(value: unknown, options: ModelValidateOptions = {}): ModelValidation {
  const none = { strategy: null, source: null, plans: [], communications: [] };
  const parsed = ModelStrategySchema.safeParse(value);
  if (!parsed.success) return { ...none, findings: schemaFindings(parsed.error) };
  const strategy = withOverrides(parsed.data, options);
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const { source, findings: sourceFindings } = resolveModelSource(strategy, options.baseDir);
  findings.push(...sourceFindings);
  const { checkIds } = deviceChecks(strategy.hardware.device_count, add);
  const owner = new Map<number, string>();
  const names = new Map<string, string>();
  strategy.stages.forEach((stage, i) => {
    const path = `$.stages[${i}]`;
    checkIds(stage.devices, `${path}.devices`);
    const first = names.get(stage.name);
    if (first) {
      add({
        code: 'DUPLICATE_NAME',
        severity: 'error',
        path: `${path}.name`,
        message: `name '${stage.name}' is already used at ${first}`,
        fix: 'give every stage and communication its own name',
      });
    } else names.set(stage.name, `${path}.name`);
    stage.devices.forEach((d, j) => {
      const other = owner.get(d);
      if (other !== undefined && other !== stage.name) {
        add({
          code: 'DEVICE_IN_TWO_STAGES',
          severity: 'error',
          path: `${path}.devices[${j}]`,
          message: `device ${d} is in stage '${other}' too: a model's pipeline stages run on groups of their own`,
          fix: 'give each stage devices no other stage uses (or merge the two stages into one layer range)',
        });
      }
      owner.set(d, stage.name);
    });
  });
  const { batch_size: sequences, microbatches, seq_len: seqLen } = strategy.batch;
  if (sequences % microbatches !== 0) {
    add({
      code: 'BATCH_NOT_DIVISIBLE',
      severity: 'error',
      path: '$.batch.microbatches',
      message: `batch_size ${sequences} sequences do not divide into ${microbatches} microbatches`,
      fix: `use a divisor of ${sequences}`,
    });
  }
  if (!source) return { ...none, strategy, findings };
  const config = source.config;
  if (seqLen > config.maxPositions) {
    add({
      code: 'SEQ_TOO_LONG',
      severity: 'error',
      path: '$.batch.seq_len',
      message: `seq_len ${seqLen} is past the model's ${config.maxPositions} positions (max_position_embeddings)`,
      fix: `use at most ${config.maxPositions} tokens per sequence`,
    });
  }
  checkLayers(strategy, config, add);
  const plans = planDecoderStages(strategy.stages, config);
  for (const plan of plans) checkDecoderStage(plan, config, add);
  const communications = strategy.communications ?? defaultCommunications(plans);
  strategy.communications?.forEach((c, i) => {
    checkIds(c.from, `$.communications[${i}].from`);
    checkIds(c.to, `$.communications[${i}].to`);
  });
  if (findings.some((f) => f.severity === 'error'))
    return { strategy, source, plans, communications, findings };
  checkFlow({ communications }, plans, add);
  checkModelLoad(strategy, config, plans, add);
  for (const m of estimateModelMemory(strategy, config, plans)) {
    const cap = strategy.hardware.memory_per_device_bytes;
    if (m.total > cap) {
      add({
        code: 'MEMORY_OVER_CAP',
        severity: 'error',
        path: '$.hardware.memory_per_device_bytes',
        message: `device ${m.device} needs ${m.total} bytes (${formatBytes(m.total)}: weights ${formatBytes(m.weights)}, KV cache ${formatBytes(m.kvCache ?? 0)}, activations ${formatBytes(m.activations)}, staging ${formatBytes(m.staging)}) but the cap is ${cap} bytes (${formatBytes(cap)})`,
        fix: `raise memory_per_device_bytes to at least ${m.total}, spread the layers over more devices, or use more microbatches (smaller activations)`,
      });
    }
  }
  return { strategy, source, plans, communications, findings };
}

/** Layer ranges: each [first, last] in order, the next starting where the last one ended, all layers run. */
function checkLayers(strategy: ModelStrategy, config: LlamaConfig, add: (f: Finding) => void): void {
  const n = config.numLayers;
  let next = 0;
  strategy.stages.forEach((stage, i) => {
    const path = `$.stages[${i}].layers`;
    const [first, last] = stage.layers;
    if (first > last) {
      add({
        code: 'LAYERS_RANGE',
        severity: 'error',
        path,
        message: `layers [${first}, ${last}] ends before it starts (both ends are included: [${first}, ${first}] is one layer)`,
        fix: `use [${last}, ${first}]`,
      });
    } else if (last >= n) {
      add({
        code: 'LAYERS_OUT_OF_RANGE',
        severity: 'error',
        path,
        message: `layer ${last} does not exist: the model has ${n} layers (0..${n - 1})`,
        fix: `end the range at ${n - 1} at most`,
      });
    }
    if (first !== next) {
      add({
        code: first > next ? 'LAYERS_GAP' : 'LAYERS_OVERLAP',
        severity: 'error',
        path: `${path}[0]`,
        message:
          first > next
            ? `layers ${next}-${first - 1} run on no stage: stage '${stage.name}' starts at ${first}`
            : `stage '${stage.name}' starts at layer ${first}, which an earlier stage already runs (it ended at ${next - 1})`,
        fix: `start this stage at layer ${next}`,
      });
    }
    next = Math.max(next, last + 1);
  });
  if (next < n) {
    const lastIndex = strategy.stages.length - 1;
    add({
      code: 'LAYERS_INCOMPLETE',
      severity: 'error',
      path: `$.stages[${lastIndex}].layers[1]`,
      message: `layers ${next}-${n - 1} run on no stage: the model has ${n} layers`,
      fix: `end the last stage at layer ${n - 1}`,
    });
  }
}

/** A stage whose estimated work is far above the others' sets the pipeline's pace: a warning with the figures. */
function checkModelLoad(
  strategy: ModelStrategy,
  config: LlamaConfig,
  plans: readonly ModelStagePlan[],
  add: (f: Finding) => void,
): void {
  for (let d = 0; d < strategy.hardware.device_count; d++) {
    if (!plans.some((p) => p.devices.includes(d))) {
      add({
        code: 'DEVICE_IDLE',
        severity: 'warning',
        path: '$.hardware.device_count',
        message: `device ${d} runs no stage`,
        fix: 'give it to a stage, or lower device_count',
      });
    }
  }
  const work = estimateModelWork(strategy, config, plans);
  const perStage = plans.map((p) => Math.max(...p.devices.map((d) => work[d]!)));
  if (perStage.length < 2) return;
  const mean = perStage.reduce((a, b) => a + b, 0) / perStage.length;
  const heaviest = perStage.indexOf(Math.max(...perStage));
  if (perStage[heaviest]! > 1.5 * mean) {
    const words = plans.map((p, i) => `${p.spec.name} ${(perStage[i]! / 1e6).toFixed(1)} MFLOP`).join(', ');
    add({
      code: 'LOAD_IMBALANCE',
      severity: 'warning',
      path: `$.stages[${heaviest}].layers`,
      message: `estimated work per microbatch per stage (its busiest device) is uneven: ${words}; '${plans[heaviest]!.spec.name}' sets the pipeline's pace`,
      fix: 'move layers from it to its neighbours (`webgpu-parallel improve FILE` does it from measured times)',
    });
  }
}
