import { ParallelError } from '../errors.js';
import type { Device } from './device.js';

export type DType = 'f32' | 'u32';
export type Shape = readonly number[];
export type TypedArrayFor<D extends DType> = D extends 'u32' ? Uint32Array : Float32Array;
export type HostArray = Float32Array | Uint32Array;

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = { f32: 4, u32: 4 };

export function elementCount(shape: Shape): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/**
 * A shape has at least one dim, each a non-negative integer. A dim of zero is valid (a shard with no rows,
 * an expert that got no tokens): such a tensor has no elements, and every kernel and collective returns the
 * right empty result for it without touching the device.
 */
export function checkShape(shape: Shape, where: string): void {
  if (shape.length === 0 || shape.some((dim) => !Number.isSafeInteger(dim) || dim < 0)) {
    throw new ParallelError(
      'SHAPE',
      `invalid shape [${shape.join(', ')}]: every dimension must be a non-negative integer`,
      {
        where,
      },
    );
  }
}

/** What a device checks before it uploads host values: a valid shape, filled exactly. */
export function checkUpload(data: HostArray, shape: Shape, label: string, where: string): void {
  checkShape(shape, label);
  checkFills(data, shape, label, where);
}

/** Throws SHAPE unless `data` holds exactly the elements of `shape`: the check of every host tensor taken in. */
export function checkFills(data: HostArray, shape: Shape, label: string, where = label): void {
  if (data.length !== elementCount(shape)) {
    throw new ParallelError(
      'SHAPE',
      `'${label}': ${data.length} values do not fill shape ${formatShape(shape)}`,
      { where },
    );
  }
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function dtypeOf(data: HostArray): DType {
  return data instanceof Uint32Array ? 'u32' : 'f32';
}

/**
 * A dense row-major tensor held by one device. Backends subclass it with their storage (a GPUBuffer, a host
 * array); kernels check `device` so that operands from two devices never meet without a collective.
 */
export abstract class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly label: string;
  abstract readonly device: Device;
  private freed = false;

  protected constructor(shape: Shape, dtype: DType, label: string) {
    checkShape(shape, label);
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.label = label;
  }

  get size(): number {
    return elementCount(this.shape);
  }

  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  /** Freed, or a view of a tensor that was freed. */
  get isFreed(): boolean {
    return this.freed || (this.viewed?.isFreed ?? false);
  }

  /** The tensor whose storage this one views (see `reshape`), if any. */
  protected get viewed(): Tensor | undefined {
    return undefined;
  }

  /**
   * The same elements in another shape, sharing the storage (row-major: no copy). The view lives as long as
   * this tensor: using it after this tensor is freed is DESTROYED. Freeing the view releases nothing, unless
   * it is `owning`: then it takes this tensor over, and freeing it frees this tensor (a function that
   * returns its result reshaped).
   */
  reshape(shape: Shape, options: { readonly label?: string; readonly owning?: boolean } = {}): Tensor {
    const label = options.label ?? this.label;
    this.assertLive('reshape');
    checkShape(shape, label);
    if (elementCount(shape) !== this.size) {
      throw new ParallelError(
        'SHAPE',
        `cannot reshape '${this.label}' ${formatShape(this.shape)} to ${formatShape(shape)}: ${this.size} elements, not ${elementCount(shape)}`,
        { where: 'reshape' },
      );
    }
    const view = this.viewAs(shape, label);
    if (options.owning) view.owner = this;
    return view;
  }

  /** The tensor an owning view frees with itself. */
  private owner: Tensor | undefined;

  protected abstract viewAs(shape: Shape, label: string): Tensor;

  /** Copies the tensor to the host. */
  read(): Promise<HostArray> {
    return this.device.read(this);
  }

  /** Returns the storage to the device and its bytes to the ledger; later use raises DESTROYED. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.release();
    this.owner?.free();
  }

  [Symbol.dispose](): void {
    this.free();
  }

  assertLive(where: string): void {
    if (this.isFreed) {
      throw new ParallelError('DESTROYED', `tensor '${this.label}' was freed before use`, { where });
    }
  }

  protected abstract release(): void;
}
