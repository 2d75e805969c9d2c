import { DistributedTensor, Replicate } from '../../collectives/layout.js';
import { isParallelError, ParallelError } from '../../errors.js';
import type { BatchSequence, LlamaStage } from '../../models/llama/stage.js';
import type { LlamaConfig } from '../../models/llama-config.js';
import type { StageSpec as ShardingStage } from '../../models/sharding-plan.js';
import { placeExperts } from '../../parallel/expert-placement.js';
import { balancedSizes, type RankHeads, splitHeads } from '../../parallel/head-split.js';
import type { Finding } from '../findings.js';
import type { PipelineStage } from '../model-plan.js';
import type { ModelStageSpec } from '../schema.js';
import { F32, type StageRuntime } from './kind.js';

/** A layer range on a device group, worked out against the model: what validation, estimates and runs use. */
export interface ModelStagePlan extends PipelineStage {
  readonly spec: ModelStageSpec;
  readonly kind: 'decoder';
  readonly mode: 'tensor';
  readonly firstLayer: number;
  readonly layerCount: number;
  /** The first stage holds the embedding; the last the final norm and the head. */
  readonly first: boolean;
  readonly last: boolean;
  /** Heads per device; null where the split is impossible (a finding says why). */
  readonly heads: readonly RankHeads[] | null;
  readonly intermediate: readonly number[];
  readonly ep: number;
  /** The experts each expert group holds (MoE models); null for a dense model or an impossible placement. */
  readonly experts: readonly (readonly number[])[] | null;
}

/** The batch as the estimates see it. */
export interface BatchShape {
  /** Sequences in the whole batch (each has its KV cache for the run). */
  readonly sequences: number;
  readonly seqLen: number;
  readonly microbatches: number;
}

function tryOr<T>(body: () => T, fallback: T): T {
  try {
    return body();
  } catch (error) {
    if (isParallelError(error)) return fallback;
    throw error;
  }
}

/** Every stage's plan; splits that cannot be made are left null for `checkDecoderStage` to report. */
export function planDecoderStages(stages: readonly ModelStageSpec[], config: LlamaConfig): ModelStagePlan[] {
  return stages.map((spec, index) => {
    const devices = [...spec.devices];
    const t = devices.length;
    const ep = spec.ep ?? 1;
    const experts =
      config.numExperts === undefined
        ? null
        : tryOr(() => placeExperts(config.numExperts!, ep, spec.experts).experts, null);
    return {
      spec,
      index,
      path: `$.stages[${index}]`,
      kind: 'decoder',
      mode: 'tensor',
      devices,
      shardSizes: devices.map(() => 1),
      output: { placement: 'replicate', devices },
      accepts: ['replicate'],
      firstLayer: spec.layers[0],
      layerCount: Math.max(0, spec.layers[1] - spec.layers[0] + 1),
      first: index === 0,
      last: index === stages.length - 1,
      heads: tryOr(() => splitHeads(config.numHeads, config.numKvHeads, t, spec.heads), null),
      intermediate: spec.intermediate ?? balancedSizes(config.intermediateSize, t),
      ep,
      experts,
    };
  });
}

/** Findings about one stage's split against the model: heads, KV heads, MLP columns, expert placement. */
export function checkDecoderStage(
  plan: ModelStagePlan,
  config: LlamaConfig,
  add: (f: Finding) => void,
): void {
  const { spec, path } = plan;
  const t = spec.devices.length;
  if (spec.heads) {
    const sum = spec.heads.reduce((a, b) => a + b, 0);
    if (spec.heads.length !== t || sum !== config.numHeads) {
      add({
        code: 'HEADS_SIZES',
        severity: 'error',
        path: `${path}.heads`,
        message: `heads [${spec.heads.join(', ')}] must give one count per device (${t}) and add up to the model's ${config.numHeads} query heads (they add up to ${sum})`,
        fix: `e.g. "heads": [${balancedSizes(config.numHeads, t).join(', ')}]`,
      });
    }
  } else if (t > config.numHeads) {
    add({
      code: 'HEADS_SPLIT',
      severity: 'error',
      path: `${path}.devices`,
      message: `${config.numHeads} attention heads cannot be split over ${t} devices: each device of a tensor-parallel group holds whole heads`,
      fix: `use at most ${config.numHeads} devices in this stage`,
    });
  }
  if (plan.heads) {
    const perKv = config.numHeads / config.numKvHeads;
    plan.heads.forEach((h, r) => {
      if (h.group === 1 && perKv > 1 && h.kvHeads.length > new Set(h.kvHeads).size) {
        add({
          code: 'KV_HEADS_REPEATED',
          severity: 'warning',
          path: spec.heads ? `${path}.heads[${r}]` : `${path}.devices`,
          message: `device ${spec.devices[r]} holds query heads ${h.qStart}-${h.qStart + h.qCount - 1}, which cut a group of ${perKv} query heads sharing a KV head (${config.numKvHeads} KV heads): it repeats the KV head per query head, ${h.kvHeads.length} KV slots instead of ${new Set(h.kvHeads).size} (more k/v weights and KV cache)`,
          fix: `give each device a multiple of ${perKv} query heads (e.g. a tensor-parallel size that divides ${config.numKvHeads})`,
        });
      }
    });
  }
  if (spec.intermediate) {
    const sum = spec.intermediate.reduce((a, b) => a + b, 0);
    if (spec.intermediate.length !== t || sum !== config.intermediateSize) {
      add({
        code: 'INTERMEDIATE_SIZES',
        severity: 'error',
        path: `${path}.intermediate`,
        message: `intermediate [${spec.intermediate.join(', ')}] must give one size per device (${t}) and add up to intermediate_size ${config.intermediateSize} (they add up to ${sum})`,
        fix: `e.g. "intermediate": [${balancedSizes(config.intermediateSize, t).join(', ')}]`,
      });
    }
  }
  checkExperts(plan, config, add);
}

function checkExperts(plan: ModelStagePlan, config: LlamaConfig, add: (f: Finding) => void): void {
  const { spec, path } = plan;
  const t = spec.devices.length;
  const E = config.numExperts;
  if (E === undefined) {
    if (spec.ep !== undefined || spec.experts !== undefined) {
      add({
        code: 'EXPERTS_ON_DENSE_MODEL',
        severity: 'error',
        path: spec.experts !== undefined ? `${path}.experts` : `${path}.ep`,
        message: 'the model has no experts (not a mixture of experts): ep and experts have nothing to place',
        fix: 'remove ep and experts from the stage, or use a Mixtral model',
      });
    }
    return;
  }
  const ep = plan.ep;
  if (t % ep !== 0) {
    add({
      code: 'EP_SPLIT',
      severity: 'error',
      path: `${path}.ep`,
      message: `the stage's ${t} devices do not split into ${ep} expert groups of equal size`,
      fix: `use an ep that divides ${t}`,
    });
  }
  if (ep > E) {
    add({
      code: 'EP_SPLIT',
      severity: 'error',
      path: `${path}.ep`,
      message: `${ep} expert groups for ${E} experts leave a group without an expert`,
      fix: `use an ep of at most ${E}`,
    });
  }
  if (!spec.experts) return;
  if (spec.experts.length !== ep) {
    add({
      code: 'EXPERT_LISTS',
      severity: 'error',
      path: `${path}.experts`,
      message: `${spec.experts.length} expert lists for ${ep} expert groups`,
      fix: `give one list of experts per expert group (${ep})`,
    });
    return;
  }
  const owner = new Map<number, number>();
  spec.experts.forEach((list, g) => {
    if (list.length === 0) {
      add({
        code: 'EXPERT_GROUP_EMPTY',
        severity: 'error',
        path: `${path}.experts[${g}]`,
        message: `expert group ${g} holds no expert`,
        fix: 'give every expert group at least one expert, or use a smaller ep',
      });
    }
    list.forEach((e, i) => {
      const where = `${path}.experts[${g}][${i}]`;
      if (e >= E) {
        add({
          code: 'EXPERT_OUT_OF_RANGE',
          severity: 'error',
          path: where,
          message: `expert ${e} does not exist: the model has ${E} experts (0..${E - 1})`,
          fix: `use experts 0..${E - 1}`,
        });
      } else if (owner.has(e)) {
        add({
          code: 'EXPERT_PLACED_TWICE',
          severity: 'error',
          path: where,
          message: `expert ${e} is placed twice (expert groups ${owner.get(e)} and ${g})`,
          fix: 'place every expert on exactly one expert group',
        });
      } else owner.set(e, g);
    });
  });
  const missing = Array.from({ length: E }, (_, e) => e).filter((e) => !owner.has(e));
  if (missing.length > 0) {
    add({
      code: 'EXPERT_NOT_PLACED',
      severity: 'error',
      path: `${path}.experts`,
      message: `expert${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} placed on no expert group`,
      fix: 'place every expert on exactly one expert group',
    });
  }
}

/**
 * How a backend's device hands out memory: WebGPU's keeps freed buffers for reuse by exact size and pools
 * its host staging (`caching`); gpu.js's and the CPU's give them back at once (`plain`).
 */
export type Allocator = 'caching' | 'plain';

/** One device's share of a stage: the bytes it holds, by what they are for. */
export interface StageDeviceMemory {
  readonly weights: number;
  readonly kvCache: number;
  readonly activations: number;
  readonly staging: number;
}

function kvSlots(plan: ModelStagePlan, rank: number): number {
  return plan.heads?.[rank]?.kvHeads.length ?? 0;
}

function qCount(plan: ModelStagePlan, rank: number): number {
  return plan.heads?.[rank]?.qCount ?? 0;
}

/** The expert group of the device at `rank`, its size, and its rank inside it. */
function expertGroupOf(plan: ModelStagePlan, rank: number): { group: number; size: number; local: number } {
  const size = Math.max(1, plan.devices.length / plan.ep);
  return { group: Math.floor(rank / size), size, local: rank % size };
}

/** Weight bytes of the device at `rank`: exactly what the library's modules allocate for the plan. */
export function decoderWeightBytes(plan: ModelStagePlan, config: LlamaConfig, rank: number): number {
  const { hiddenSize: H, headDim: d, vocabSize: V } = config;
  const t = plan.devices.length;
  const vocabRows = balancedSizes(V, t)[rank]!;
  const q = qCount(plan, rank) * d;
  const kv = kvSlots(plan, rank) * d;
  let perLayer = 2 * H + H * (q + 2 * kv) + q * H;
  if (config.numExperts === undefined) perLayer += 3 * H * plan.intermediate[rank]!;
  else {
    const { group, size, local } = expertGroupOf(plan, rank);
    const held = plan.experts?.[group]?.length ?? 0;
    perLayer += config.numExperts * H + held * 3 * H * balancedSizes(config.intermediateSize, size)[local]!;
  }
  let elements = plan.layerCount * perLayer;
  if (plan.first) elements += vocabRows * H;
  if (plan.last) {
    elements += H;
    // A tied head reads the embedding table: the first stage's own, or a copy on a later stage.
    if (!config.tieWordEmbeddings || !plan.first) elements += vocabRows * H;
  }
  return elements * F32;
}

/**
 * Bytes of the device at `rank` for a run of `batch`: its weights (exact); the KV cache of every sequence
 * (each has one for the run: prefill writes the positions, attention reads them); activations; and the
 * host staging its all-reduces and transfers go through. The device's caching allocator keeps every freed
 * buffer for the next tensor of exactly its size, so a layer's activations count with every distinct
 * shape it makes (attention's and the MLP's both, not the larger), and an MoE layer's with each distinct
 * number of rows its experts and all_to_alls see, which routing varies from microbatch to microbatch.
 */
export function decoderMemory(
  plan: ModelStagePlan,
  config: LlamaConfig,
  rank: number,
  batch: BatchShape,
  allocator: Allocator = 'caching',
): StageDeviceMemory {
  const { hiddenSize: H, headDim: d, vocabSize: V } = config;
  const t = plan.devices.length;
  const m = batch.microbatches;
  const perMb = Math.ceil(batch.sequences / m);
  const tokens = perMb * batch.seqLen;
  const q = qCount(plan, rank) * d;
  const kv = kvSlots(plan, rank) * d;
  const kvCache = plan.layerCount * 2 * kv * batch.seqLen * F32 * batch.sequences;
  // Norm, q/k/v and their rotations, per-sequence slices where a microbatch holds several, the context,
  // o_proj's partial and sum, the residual; the scores and probabilities of each sequence's heads.
  const slices = perMb > 1 ? q + 2 * kv + q : 0;
  const attention =
    tokens * (H + 2 * q + 3 * kv + q + slices + 3 * H) + perMb * qCount(plan, rank) * batch.seqLen ** 2 * 2;
  let ffn: number;
  if (config.numExperts === undefined) ffn = tokens * (H + 3 * plan.intermediate[rank]! + 3 * H);
  else ffn = moeActivations(plan, config, rank, tokens, m);
  const queued = plan.first ? 0 : Math.max(1, m - 1) * tokens * H;
  const vocabRows = balancedSizes(V, t)[rank]!;
  const logits = plan.last ? tokens * vocabRows : 0;
  if (allocator === 'plain') {
    // Freed buffers go back at once: the largest set live at one time, and every microbatch's input
    // queued at a later stage (the transfers run ahead of it).
    const inter = config.numExperts === undefined ? plan.intermediate[rank]! : config.intermediateSize;
    const live = Math.max(tokens * (3 * H + 2 * inter), logits);
    const waiting = plan.first ? 0 : m * tokens * H;
    return {
      weights: decoderWeightBytes(plan, config, rank),
      kvCache,
      activations: (live + waiting) * F32,
      staging: 0,
    };
  }
  const activations = (attention + ffn + queued + logits) * F32;
  // Readback staging: the partial sums of each all-reduce (tensor parallel), the stage's output for the
  // transfer, the logits read back.
  const staging = ((t > 1 ? 2 * tokens * H : 0) + (plan.last ? logits : tokens * H)) * F32;
  return { weights: decoderWeightBytes(plan, config, rank), kvCache, activations, staging };
}

/**
 * An MoE layer's activations on one device, counted in elements: the router and the token slice, and for
 * each distinct row count the buffers of an expert's forward (input, gate, up, product, output, the
 * gathers around it) and of the all_to_alls. Rows per expert are near Binomial(tokens·k, 1/E): the
 * distinct counts seen are about ±2 standard deviations' worth, at most one per expert forward run.
 */
function moeActivations(
  plan: ModelStagePlan,
  config: LlamaConfig,
  rank: number,
  tokens: number,
  m: number,
): number {
  const H = config.hiddenSize;
  const E = config.numExperts!;
  const k = config.expertsPerToken ?? 1;
  const { group, size, local } = expertGroupOf(plan, rank);
  const held = plan.experts?.[group]?.length ?? 0;
  const inter = balancedSizes(config.intermediateSize, size)[local]!;
  const perExpert = (tokens * k) / E;
  const forwards = held * plan.layerCount * m;
  const distinct = (mean: number, draws: number) =>
    Math.max(1, Math.min(draws, Math.round(4 * Math.sqrt(mean)) + 1));
  const experts = distinct(perExpert, forwards) * perExpert * (3 * H + 3 * inter);
  const received = perExpert * held;
  const exchanges = distinct(received, plan.layerCount * m) * received * 4 * H;
  return tokens * (2 * H + E) + experts + exchanges;
}

/** Floating-point operations of the device at `rank` for one microbatch (a matmul counts 2·M·N·K). */
export function decoderFlops(
  plan: ModelStagePlan,
  config: LlamaConfig,
  rank: number,
  batch: BatchShape,
): number {
  const { hiddenSize: H, headDim: d, vocabSize: V } = config;
  const perSequence = Math.ceil(batch.sequences / batch.microbatches);
  const tokens = perSequence * batch.seqLen;
  const q = qCount(plan, rank) * d;
  const kv = kvSlots(plan, rank) * d;
  // Causal attention: scores and context over half the square on average, per local query head.
  const attention = perSequence * 2 * 2 * qCount(plan, rank) * d * ((batch.seqLen * (batch.seqLen + 1)) / 2);
  let ffn: number;
  if (config.numExperts === undefined) ffn = 2 * tokens * 3 * H * plan.intermediate[rank]!;
  else {
    const { group, size, local } = expertGroupOf(plan, rank);
    const share = (plan.experts?.[group]?.length ?? 0) / config.numExperts;
    const rows = tokens * (config.expertsPerToken ?? 1) * share;
    const inter = balancedSizes(config.intermediateSize, size)[local]!;
    ffn = 2 * rows * 3 * H * inter + (2 * tokens * H * config.numExperts) / plan.ep;
  }
  const perLayer = 2 * tokens * H * (q + 2 * kv) + attention + 2 * tokens * q * H + ffn;
  let flops = plan.layerCount * perLayer;
  if (plan.first) flops += tokens * H;
  if (plan.last) flops += 2 * tokens * H * balancedSizes(V, plan.devices.length)[rank]!;
  return flops;
}

/** The library's sharding-plan stage for a plan (device ids are indexes into the group opened for the run). */
export function shardingStage(plan: ModelStagePlan): ShardingStage {
  const { spec } = plan;
  return {
    devices: spec.devices,
    layers: plan.layerCount,
    ...(spec.heads ? { heads: spec.heads } : {}),
    ...(spec.intermediate ? { intermediate: spec.intermediate } : {}),
    ...(spec.ep !== undefined ? { ep: spec.ep } : {}),
    ...(spec.experts ? { experts: spec.experts } : {}),
  };
}

/**
 * A LlamaStage as a pipeline element: the stage reads its microbatch's sequences (ids, positions, KV
 * caches) itself, takes the hidden states a communication put on its group, and gives the next
 * stage's input, or (the last) every row's logits on the host.
 */
export function decoderRuntime(
  stage: LlamaStage,
  batches: readonly (readonly BatchSequence[])[],
): StageRuntime {
  return {
    groupFor: () => stage.group,
    inputPlacement: () => Replicate(),
    async forward(input, mb) {
      const out = await stage.run(batches[mb]!, input, 'logits');
      if (out instanceof DistributedTensor) return out;
      if (out.kind !== 'logits')
        throw new ParallelError('SHAPE', 'the last stage gave token ids, not logits');
      return out.logits;
    },
    // The model owns the stage's parameters; it is disposed with the run.
    destroy: () => {},
  };
}
