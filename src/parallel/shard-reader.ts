import type { Shape } from '../runtime/tensor.js';
import { sliceLength, transposeHost, type WeightReader, type WeightSlice } from './weight-reader.js';

type Slot = 'read' | 'transpose';

/**
 * A WeightReader that reads every slice into the same two host buffers (one for the read, one for its
 * transpose), grown to the largest slice. Uploads copy, so the buffers are free again as soon as a shard is
 * on its device; without them every slice is garbage until V8 collects it, which on the small preset over
 * 3 devices left about as much host memory again as the largest shard (bench/RESULTS.md, "Loading").
 * Wrap a reader once for a whole load; the loaders wrap a plain reader themselves, for one tensor.
 */
export class ShardReader implements WeightReader {
  private readonly buffers: Record<Slot, Float32Array> = {
    read: new Float32Array(0),
    transpose: new Float32Array(0),
  };

  private constructor(private readonly source: WeightReader) {}

  static of(reader: WeightReader): ShardReader {
    return reader instanceof ShardReader ? reader : new ShardReader(reader);
  }

  has(name: string): boolean {
    return this.source.has(name);
  }

  info(name: string): { readonly shape: Shape } {
    return this.source.info(name);
  }

  readF32(name: string, slice?: WeightSlice, out?: Float32Array): Float32Array {
    return this.source.readF32(name, slice, out);
  }

  /** `slice` of `name` in the read buffer: valid until the next use of that buffer. */
  readSlice(name: string, slice?: WeightSlice): Float32Array {
    const length = sliceLength(this.source.info(name).shape, slice);
    return this.source.readF32(name, slice, this.buffer('read', length));
  }

  /** [rows, cols] -> [cols, rows] into the transpose buffer. */
  transposed(data: Float32Array, rows: number, cols: number): Float32Array {
    return transposeHost(data, rows, cols, this.buffer('transpose', data.length));
  }

  /** The first `length` values of a buffer, grown when too short. */
  buffer(slot: Slot, length: number): Float32Array {
    if (this.buffers[slot].length < length) this.buffers[slot] = new Float32Array(length);
    return this.buffers[slot].subarray(0, length);
  }
}
