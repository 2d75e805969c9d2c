import { ParallelError } from '../errors.js';
import { copyRunsRef, transpose01Ref } from '../kernels/reference/transformer-ops.js';
import { elementCount, formatShape, type Shape } from '../runtime/tensor.js';

/** A range along one dim of a stored tensor: the part one device holds. */
export interface WeightSlice {
  readonly dim: number;
  readonly start: number;
  readonly length: number;
}

/**
 * Where a model's parameters come from, by Hugging Face name and in Hugging Face layout (a linear weight
 * is [out, in]). A checkpoint reads only the bytes of the slice asked for, so each device's load costs host
 * memory near its own shard.
 */
export interface WeightReader {
  has(name: string): boolean;
  info(name: string): { readonly shape: Shape };
  /**
   * The tensor (or `slice` of it) as f32. With `out` (exactly the slice's element count) the values land
   * there and `out` is returned, so a loader can reuse one buffer for every slice.
   */
  readF32(name: string, slice?: WeightSlice, out?: Float32Array): Float32Array;
}

/** Elements of `slice` of a tensor of `shape` (all of it without a slice). */
export function sliceLength(shape: Shape, slice?: WeightSlice): number {
  if (!slice) return elementCount(shape);
  return (elementCount(shape) / shape[slice.dim]!) * slice.length;
}

/** `out` when given and of the right length, else a new array; a wrong length is the caller's bug. */
export function outputFor(name: string, count: number, out?: Float32Array): Float32Array {
  if (!out) return new Float32Array(count);
  if (out.length !== count) {
    throw new ParallelError(
      'SHAPE',
      `weight '${name}': the slice has ${count} values, the buffer given for it ${out.length}`,
    );
  }
  return out;
}

/** Parameters held in host memory (random weights for tests and benches; a state dict built by hand). */
export class MemoryWeights implements WeightReader {
  constructor(
    private readonly tensors: Readonly<Record<string, Float32Array>>,
    private readonly shapes: Readonly<Record<string, Shape>>,
  ) {
    for (const [name, shape] of Object.entries(shapes)) {
      const data = tensors[name];
      if (!data || data.length !== elementCount(shape)) {
        throw new ParallelError(
          'SHAPE',
          `weight '${name}': ${data?.length ?? 0} values do not fill ${formatShape(shape)}`,
        );
      }
    }
  }

  has(name: string): boolean {
    return name in this.shapes;
  }

  info(name: string): { shape: Shape } {
    const shape = this.shapes[name];
    if (!shape)
      throw new ParallelError('CHECKPOINT', `no tensor '${name}' among the weights`, { where: name });
    return { shape };
  }

  readF32(name: string, slice?: WeightSlice, out?: Float32Array): Float32Array {
    const { shape } = this.info(name);
    const data = this.tensors[name]!;
    if (!slice) {
      if (!out) return data;
      outputFor(name, data.length, out).set(data);
      return out;
    }
    return sliceOf(data, shape, slice, outputFor(name, sliceLength(shape, slice), out));
  }
}

/** The elements of `slice` of a row-major tensor, copied out (into `out` when given). */
export function sliceOf(
  data: Float32Array,
  shape: Shape,
  slice: WeightSlice,
  out: Float32Array = new Float32Array(sliceLength(shape, slice)),
): Float32Array {
  const outer = elementCount(shape.slice(0, slice.dim));
  const inner = elementCount(shape.slice(slice.dim + 1));
  const width = slice.length * inner;
  const srcRow = shape[slice.dim]! * inner;
  copyRunsRef(data, out, { outer, width, srcRow, srcAt: slice.start * inner, dstRow: width, dstAt: 0 });
  return out;
}

/** [rows, cols] -> [cols, rows] on the host: a Hugging Face [out, in] weight into this library's [in, out]. */
export function transposeHost(
  data: Float32Array,
  rows: number,
  cols: number,
  out?: Float32Array,
): Float32Array {
  return transpose01Ref(data, rows, cols, 1, out);
}
