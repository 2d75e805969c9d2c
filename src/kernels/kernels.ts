import type { Tensor } from '../runtime/tensor.js';

export type Activation = 'none' | 'relu' | 'gelu';

export interface MatmulOptions {
  /** Added to every row of the product, before the activation: shape [N]. */
  readonly bias?: Tensor;
  readonly activation?: Activation;
  /** A variant key or kind to force; otherwise the device's tuned or default pick for the shape. */
  readonly variant?: string;
  readonly label?: string;
}

export interface EmbeddingOptions {
  /**
   * First vocabulary row this table holds. Ids outside [rowOffset, rowOffset + rows) give zero rows, which
   * is what vocab-parallel embedding sums across devices.
   */
  readonly rowOffset?: number;
  readonly label?: string;
}

/**
 * The kernels a small model needs, as every backend implements them. Shapes are row-major; a matrix is
 * [rows, cols]. Results live on the same device as the inputs; all inputs must share that device.
 */
export interface Kernels {
  /** C[M, N] = act(A[M, K] · B[K, N] + bias[N]). */
  matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Promise<Tensor>;
  /** out[i, :] = table[ids[i] - rowOffset, :] for ids in range, else zeros; table [V, H], ids u32 [T]. */
  embedding(table: Tensor, ids: Tensor, options?: EmbeddingOptions): Promise<Tensor>;
  /** a + b, same shape; or b of shape [cols] broadcast over the rows of a. */
  add(a: Tensor, b: Tensor, label?: string): Promise<Tensor>;
  /** a * factor. */
  scale(a: Tensor, factor: number, label?: string): Promise<Tensor>;
  /** Elementwise sum of K tensors of one shape: the on-device half of a reduction. */
  sum(inputs: readonly Tensor[], label?: string): Promise<Tensor>;
  /** x [G * rowsPerGroup, C] -> [G, C], the mean of each group of rows (default: all rows, G = 1). */
  meanRows(x: Tensor, rowsPerGroup?: number, label?: string): Promise<Tensor>;
  /** Per row: (x - mean) / sqrt(var + eps) * gamma + beta; x [R, C], gamma and beta [C]. */
  layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps?: number, label?: string): Promise<Tensor>;
  /** Softmax along the last dim of x [R, C]. */
  softmax(x: Tensor, label?: string): Promise<Tensor>;
}

export const DEFAULT_LAYER_NORM_EPS = 1e-5;
