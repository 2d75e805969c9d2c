import { type DistributedTensor, Shard, splitOffsets } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { TensorScope } from '../runtime/scope.js';
import { expectShape, loadColumnParallel, spansOf } from './load-shards.js';
import type { Module, Parameter } from './module.js';
import { allOrFree, mapShards } from './shards.js';
import type { WeightReader } from './weight-reader.js';

export interface LmHeadOptions {
  readonly group: DeviceGroup;
  readonly hidden: number;
  readonly vocab: number;
  /** Vocabulary rows per device. */
  readonly sizes: readonly number[];
  /** `lm_head.weight` [vocab, hidden]; or, with tied embeddings, the embedding table's shards [vocab, hidden] Shard(0). */
  readonly weight:
    | { readonly name: string; readonly reader: WeightReader }
    | { readonly tied: DistributedTensor };
}

/**
 * The output projection, column-parallel over the vocabulary: device r computes the logits of its vocabulary
 * range, so they come out sharded on the last dim. Greedy decoding combines each device's argmax (value and
 * index) on the host instead of gathering the logits.
 */
export class VocabParallelHead implements Module {
  readonly group: DeviceGroup;
  private readonly weight: DistributedTensor;
  private readonly tied: boolean;
  private readonly name: string;

  constructor(private readonly options: LmHeadOptions) {
    this.group = options.group;
    const w = options.weight;
    if ('tied' in w) {
      this.weight = w.tied;
      this.tied = true;
      this.name = 'model.embed_tokens.weight';
    } else {
      expectShape(w.reader, w.name, [options.vocab, options.hidden]);
      this.weight = loadColumnParallel(w.reader, w.name, options.group, spansOf(options.sizes));
      this.tied = false;
      this.name = w.name;
    }
  }

  parameters(): Parameter[] {
    return this.tied ? [] : [{ name: this.name, value: this.weight }];
  }

  /** x [tokens, hidden] replicated -> logits [tokens, vocab] sharded on dim 1. */
  logits(x: DistributedTensor): Promise<DistributedTensor> {
    const tokens = x.globalShape[0]!;
    const { hidden, vocab, sizes } = this.options;
    return mapShards(
      x,
      async (shard, device, r) => {
        const w = this.weight.shards[r]!;
        if (!this.tied) return device.kernels.matmul(shard, w, { label: 'lm_head' });
        // The table is stored [rows, hidden]: its transpose is the product's B, read in place.
        const out = await device.kernels.batchedMatmul(
          shard.reshape([1, tokens, hidden]),
          w.reshape([1, sizes[r]!, hidden]),
          {
            transposeB: true,
            label: 'lm_head',
          },
        );
        return out.reshape([tokens, sizes[r]!], { owning: true });
      },
      Shard(1, sizes),
      [tokens, vocab],
    );
  }

  /** The id of the largest logit of every row, exactly as an argmax over gathered logits (lowest id on ties). */
  async greedy(x: DistributedTensor): Promise<Uint32Array> {
    using scope = new TensorScope();
    const logits = scope.track(await this.logits(x));
    const offsets = splitOffsets(this.options.sizes);
    // Each part tracks its tensors in the scope as they come; only the reads are left to settle.
    const parts = await allOrFree(
      logits.shards.map(async (shard) => {
        const { indices, values } = await shard.device.kernels.argmax(shard, 'lm_head.argmax');
        scope.track(indices);
        scope.track(values);
        return {
          indices: (await indices.read()) as Uint32Array,
          values: (await values.read()) as Float32Array,
        };
      }),
      () => {},
    );
    const rows = x.globalShape[0]!;
    const ids = new Uint32Array(rows);
    for (let i = 0; i < rows; i++) {
      let best = -1;
      parts.forEach((p, r) => {
        if (best < 0 || p.values[i]! > parts[best]!.values[i]!) best = r;
      });
      ids[i] = offsets[best]! + parts[best]!.indices[i]!;
    }
    return ids;
  }

  free(): void {
    if (!this.tied) this.weight.free();
  }
}
