import { allGather } from '../collectives/all-gather.js';
import type { CollectiveContext, ReduceOn } from '../collectives/context.js';
import { type DistributedTensor, Partial, Replicate, Shard, splitOffsets } from '../collectives/layout.js';
import { redistribute } from '../collectives/redistribute.js';
import { NO_TRAFFIC } from '../collectives/traffic.js';
import { ParallelError } from '../errors.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import type { LayerOutput } from './column-parallel-linear.js';
import { mapShards } from './shards.js';
import { checkSameGroup, layerWeight } from './weights.js';

export interface ParallelEmbeddingOptions {
  readonly group: DeviceGroup;
  /** Full table, row-major [vocab, hidden]; or its shards already on the group, split as the layer splits it. */
  readonly table: Float32Array | DistributedTensor;
  readonly vocab: number;
  readonly hidden: number;
  /** Per device: hidden columns (column-parallel) or vocabulary rows (vocab-parallel); absent: even. */
  readonly sizes?: readonly number[];
  readonly label?: string;
}

/** The [vocab, hidden] table, split over the group along `dim` (1: hidden columns, 0: vocabulary rows). */
function shardTable(options: ParallelEmbeddingOptions, dim: 0 | 1, label: string): DistributedTensor {
  const shape = [options.vocab, options.hidden];
  return layerWeight(options.group, options.table, shape, dim, options.sizes, `${label}.table`);
}

function checkIds(ids: DistributedTensor, group: DeviceGroup, where: string): void {
  checkSameGroup(ids, group, where);
  if (ids.placement.kind !== 'replicate' || ids.dtype !== 'u32' || ids.globalShape.length !== 1) {
    throw new ParallelError(
      'SHAPE',
      `${where} needs replicated u32 token ids [tokens], got ${ids.describe()}`,
      { where },
    );
  }
}

/**
 * Column-parallel embedding: E = [E_1 .. E_p] split on the hidden dim; device r looks up E_r[ids], so the
 * output [tokens, hidden] is sharded on its last dim, or all-gathered with `gatherOutput`.
 */
export class ColumnParallelEmbedding {
  readonly table: DistributedTensor;
  private readonly label: string;

  constructor(
    private readonly ctx: CollectiveContext,
    readonly options: ParallelEmbeddingOptions & { readonly gatherOutput?: boolean },
  ) {
    this.label = options.label ?? 'ColumnParallelEmbedding';
    this.table = shardTable(options, 1, this.label);
  }

  /** ids: u32 [tokens], replicated on the layer's group. */
  async forward(ids: DistributedTensor): Promise<LayerOutput> {
    const group = this.options.group;
    checkIds(ids, group, this.label);
    const sizes = this.table.shards.map((s) => s.shape[1]!);
    const output = await mapShards(
      ids,
      (shard, d, r) => d.kernels.embedding(this.table.shards[r]!, shard, { label: `${this.label}[${r}]` }),
      Shard(1, sizes),
      [ids.globalShape[0]!, this.options.hidden],
    );
    if (!this.options.gatherOutput) return { output, traffic: NO_TRAFFIC };
    try {
      const gathered = await allGather(this.ctx, output, group, { label: `${this.label}/gather` });
      output.free(gathered.output.shards);
      return gathered;
    } catch (error) {
      output.free();
      throw error;
    }
  }

  free(): void {
    this.table.free();
  }
}

/**
 * Vocab-parallel embedding: E = [E_1; ..; E_p] split on the vocabulary rows; device r looks up the ids in its
 * row range (others give zero rows, via the kernel's rowOffset), and the partial outputs are summed.
 */
export class VocabParallelEmbedding {
  readonly table: DistributedTensor;
  private readonly label: string;
  private readonly offsets: readonly number[];

  constructor(
    private readonly ctx: CollectiveContext,
    readonly options: ParallelEmbeddingOptions & { readonly reduceOn?: ReduceOn },
  ) {
    this.label = options.label ?? 'VocabParallelEmbedding';
    this.table = shardTable(options, 0, this.label);
    this.offsets = splitOffsets(this.table.shards.map((s) => s.shape[0]!));
  }

  /** ids: u32 [tokens], replicated on the layer's group; the output is replicated on the group. */
  async forward(ids: DistributedTensor): Promise<LayerOutput> {
    const partial = await this.forwardPartial(ids);
    try {
      const summed = await redistribute(this.ctx, partial, this.options.group, Replicate(), {
        label: `${this.label}/sum`,
        reduceOn: this.options.reduceOn,
      });
      partial.free(summed.output.shards);
      return summed;
    } catch (error) {
      partial.free();
      throw error;
    }
  }

  /** Each device's rows of its vocabulary range (zeros elsewhere), Partial(sum): for a caller that sums them with a collective of its own. */
  async forwardPartial(ids: DistributedTensor): Promise<DistributedTensor> {
    const group = this.options.group;
    checkIds(ids, group, this.label);
    return mapShards(
      ids,
      (shard, d, r) =>
        d.kernels.embedding(this.table.shards[r]!, shard, {
          rowOffset: this.offsets[r]!,
          label: `${this.label}[${r}]`,
        }),
      Partial(),
      [ids.globalShape[0]!, this.options.hidden],
    );
  }

  free(): void {
    this.table.free();
  }
}
