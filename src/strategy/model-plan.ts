import type { CommunicationSpec, StageSpec, Strategy } from './schema.js';
import { chainKind } from './stages/registry.js';

/** Where a stage's output, or the input it needs, lives: a DTensor-like placement over a device group. */
export type PlacementKind = 'shard' | 'replicate' | 'partial';

export interface Layout {
  readonly placement: PlacementKind;
  readonly devices: readonly number[];
}

export type StageMode = 'column' | 'row' | 'single' | 'replicas' | 'tensor';

/**
 * What the schedule, the executor and the communication checks need of any stage, of a chain model or of
 * a real model's layer range: its devices, how it runs on them, what it gives and what it reads.
 */
export interface PipelineStage {
  readonly spec: { readonly name: string };
  readonly index: number;
  readonly path: string;
  readonly kind: string;
  readonly mode: StageMode;
  readonly devices: readonly number[];
  /** Shard sizes of the split dimension per device (one entry of the whole dim when not split). */
  readonly shardSizes: readonly number[];
  readonly output: Layout;
  /** Placements the stage can read its input in, on its own devices. */
  readonly accepts: readonly PlacementKind[];
}

/** A chain stage with its sizes and layouts worked out: what the runner builds and the validator checks. */
export interface StagePlan extends PipelineStage {
  readonly spec: StageSpec;
  /** The canonical name of its kind (see stages/registry.ts). */
  readonly kind: string;
  /** Width of the stage's input rows (the vocabulary for an embedding) and of its output rows. */
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly activation: 'none' | 'relu' | 'gelu';
}

/** Splits `total` into `parts` near-equal sizes; the earlier parts take the remainder. */
export function evenSizes(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export function stageDevices(spec: StageSpec): number[] {
  if (spec.tensor_parallel) return [...spec.tensor_parallel.devices];
  if (spec.data_parallel) return [...spec.data_parallel.devices];
  return spec.device === undefined ? [0] : [spec.device];
}

/** Works out every stage's widths, shard sizes and layouts, in file order. Assumes a schema-valid file. */
export function planStages(strategy: Strategy): StagePlan[] {
  const plans: StagePlan[] = [];
  let width = strategy.model.hidden_size;
  strategy.stages.forEach((spec, index) => {
    const kind = chainKind(spec.kind);
    const tp = spec.tensor_parallel;
    const devices = stageDevices(spec);
    const mode: StageMode = tp
      ? tp.mode
      : spec.data_parallel && spec.data_parallel.devices.length > 1
        ? 'replicas'
        : 'single';
    const { inFeatures, outFeatures, accepts } = kind.shape(spec, strategy, width);
    // Column splits the output dim; row splits the input dim (for an embedding: the vocabulary rows).
    const splitTotal = mode === 'column' ? outFeatures : inFeatures;
    const shardSizes = tp?.sizes ?? (tp ? evenSizes(splitTotal, devices.length) : [splitTotal]);
    const output: Layout =
      mode === 'column'
        ? { placement: 'shard', devices }
        : mode === 'row'
          ? { placement: 'partial', devices }
          : { placement: 'replicate', devices };
    plans.push({
      spec,
      index,
      path: `$.stages[${index}]`,
      kind: kind.kind,
      mode,
      devices,
      inFeatures,
      outFeatures,
      shardSizes,
      output,
      accepts,
      activation: spec.activation ?? 'none',
    });
    width = outFeatures;
  });
  return plans;
}

/** The layout a communication op turns its input into, on its destination group; null if the op cannot take the input. */
export function applyCommunication(
  op: CommunicationSpec['op'],
  input: PlacementKind,
  to: readonly number[],
): Layout | null {
  const on = (placement: PlacementKind): Layout => ({ placement, devices: to });
  switch (op) {
    case 'all_gather':
      return input === 'shard' ? on('replicate') : null;
    case 'all_reduce':
      return input === 'partial' ? on('replicate') : null;
    case 'reduce':
      return input === 'partial' && to.length === 1 ? on('replicate') : null;
    case 'reduce_scatter':
      return input === 'partial' ? on('shard') : null;
    case 'broadcast':
      return input === 'replicate' ? on('replicate') : null;
    case 'scatter':
      return input === 'replicate' ? on('shard') : null;
    case 'send_recv':
      return on(input);
  }
}

/** The op that does turn `input` into one of the placements a stage accepts: the fix a finding suggests. */
export function suggestCommunication(
  input: PlacementKind,
  accepts: readonly PlacementKind[],
): CommunicationSpec['op'] | null {
  if (input === 'shard') return accepts.includes('replicate') ? 'all_gather' : 'send_recv';
  if (input === 'partial') return accepts.includes('replicate') ? 'all_reduce' : 'reduce_scatter';
  return accepts.includes('replicate') ? 'broadcast' : 'scatter';
}

export function sameDevices(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The consumer reads the producer's output where it lies: same devices, and a layout it accepts as is. */
export function directHandoff(producer: PipelineStage, consumer: PipelineStage): boolean {
  if (
    !sameDevices(producer.devices, consumer.devices) ||
    consumer.mode === 'replicas' ||
    producer.mode === 'replicas'
  )
    return false;
  const placement = producer.output.placement;
  if (placement === 'replicate') return consumer.accepts.includes('replicate');
  // Megatron's MLP: a column split's output shards are exactly a row split's input shards.
  return (
    placement === 'shard' &&
    consumer.mode === 'row' &&
    consumer.accepts.includes('shard') &&
    producer.shardSizes.every((s, i) => s === consumer.shardSizes[i])
  );
}

/**
 * The communication that carries `producer`'s output to `consumer`: the first unused one from the
 * producer's devices whose op takes that output and delivers what the consumer reads on its devices.
 * Without one, a direct handoff needs none (-1); else the first unused one from the producer's devices is
 * returned, so that validation can say what is wrong with it (or -1 when there is none at all).
 */
export function matchCommunication(
  producer: PipelineStage,
  consumer: PipelineStage,
  communications: readonly CommunicationSpec[],
  used: ReadonlySet<number>,
): number {
  const candidates = communications
    .map((c, j) => ({ c, j }))
    .filter(({ c, j }) => !used.has(j) && sameDevices(c.from, producer.devices));
  const fits = candidates.find(({ c }) => {
    const next = applyCommunication(c.op, producer.output.placement, c.to);
    return next !== null && consumer.accepts.includes(next.placement) && sameDevices(c.to, consumer.devices);
  });
  if (fits) return fits.j;
  if (directHandoff(producer, consumer)) return -1;
  return candidates[0]?.j ?? -1;
}

export { shardSize } from './stages/kind.js';
