import type { Tensor } from '../runtime/tensor.js';

export type Activation = 'none' | 'relu' | 'gelu';

export interface MatmulOptions {
  /** Added to every row of the product, before the activation: shape [N]. */
  readonly bias?: Tensor;
  readonly activation?: Activation;
  /**
   * Added to the result after the activation, element by element: shape [M, N]. The residual stream's add
   * (Y = X·W + R) in the matmul's store, where the product is whole on one device (no partial sums).
   */
  readonly residual?: Tensor;
  /** A variant key or kind to force; otherwise the device's tuned or default pick for the shape. */
  readonly variant?: string;
  readonly label?: string;
}

export interface BatchedMatmulOptions {
  /** b is [B, N, K], each batch transposed: C = A·Bᵀ (attention scores from keys stored by row). */
  readonly transposeB?: boolean;
  /** Multiplies every product (attention's 1/sqrt(head_dim)); default 1. */
  readonly scale?: number;
  /**
   * Only the first `bRows` rows of each batch of b take part (default all): a KV cache allocated for its
   * capacity and filled up to `bRows` positions. With transposeB that is N; without, K.
   */
  readonly bRows?: number;
  readonly label?: string;
}

export interface RopeOptions {
  /** Each row of x is [heads, headDim]; rotate-half pairs element i with i + headDim / 2 inside a head. */
  readonly headDim: number;
  /** Base of the inverse frequencies, theta^(-2i/headDim) (Hugging Face's rope_theta). */
  readonly theta: number;
  readonly label?: string;
}

export interface CausalSoftmaxOptions {
  /**
   * Rows come in blocks of `queries` consecutive query positions: row r is query r % queries, at absolute
   * position `offset` + r % queries, and sees keys 0 .. that position (later keys get probability 0).
   */
  readonly queries: number;
  /** Position of the block's first query: the number of keys cached before it (0 for a prefill). */
  readonly offset?: number;
  /** Applied to the scores before the softmax; default 1. */
  readonly scale?: number;
  readonly label?: string;
}

export interface AddRmsNormResult {
  /** x + residual, elementwise: the residual stream after the add. */
  readonly sum: Tensor;
  /** rmsNorm(sum) · weight: the next block's input. */
  readonly normed: Tensor;
}

export interface ArgmaxResult {
  /** u32 [R]: the column of each row's largest value; the lowest such column on ties. */
  readonly indices: Tensor;
  /** f32 [R]: that value, so that argmaxes over column shards can be combined. */
  readonly values: Tensor;
}

export interface RouterTopKResult {
  /** u32 [T, k]: each row's k experts, the highest-weighted first; the lower expert on equal logits. */
  readonly indices: Tensor;
  /** f32 [T, k]: their weights, summing to one per row. */
  readonly weights: Tensor;
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
 *
 * Operands may have a dim of zero (a shard of no rows, an expert given no tokens). The result then has its
 * usual shape, and a kernel whose result has no elements runs nothing on the device. A result that is not
 * empty from operands that are follows the sum over nothing, 0: matmul over K = 0 is act(bias) on every row
 * (zeros without a bias), batchedMatmul over K = 0 zeros, embedding from a table of no rows zero rows.
 * Where an empty input has no answer, a SHAPE error says so: meanRows of no rows in one group (the mean
 * of nothing), argmax of rows of no columns.
 */
export interface Kernels {
  /** C[M, N] = act(A[M, K] · B[K, N] + bias[N]) + residual[M, N]. */
  matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Promise<Tensor>;
  /** out[i, :] = table[ids[i] - rowOffset, :] for ids in range, else zeros; table [V, H], ids u32 [T]. */
  embedding(table: Tensor, ids: Tensor, options?: EmbeddingOptions): Promise<Tensor>;
  /** a + b, same shape; or b of shape [cols] broadcast over the rows of a. */
  add(a: Tensor, b: Tensor, label?: string): Promise<Tensor>;
  /** a * factor. */
  scale(a: Tensor, factor: number, label?: string): Promise<Tensor>;
  /** Elementwise sum of K tensors of one shape: the on-device half of a reduction. */
  sum(inputs: readonly Tensor[], label?: string): Promise<Tensor>;
  /**
   * x [G * rowsPerGroup, C] -> [G, C], the mean of each group of rows (default: all rows, G = 1). With
   * rowsPerGroup, no rows are no groups ([0, C]); without it, no rows are refused (SHAPE).
   */
  meanRows(x: Tensor, rowsPerGroup?: number, label?: string): Promise<Tensor>;
  /** Per row: (x - mean) / sqrt(var + eps) * gamma + beta; x [R, C], gamma and beta [C]. */
  layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps?: number, label?: string): Promise<Tensor>;
  /** Softmax along the last dim of x [R, C]. */
  softmax(x: Tensor, label?: string): Promise<Tensor>;

  /** C[b] = scale · A[b] · B[b] (or B[b]ᵀ): a [B, M, K], b [B, K, N] (or [B, N, K]) -> [B, M, N]. */
  batchedMatmul(a: Tensor, b: Tensor, options?: BatchedMatmulOptions): Promise<Tensor>;
  /** Per row: x / sqrt(mean(x²) + eps) * weight; x [R, C] (any shape whose last dim is C), weight [C]. */
  rmsNorm(x: Tensor, weight: Tensor, eps: number, label?: string): Promise<Tensor>;
  /**
   * sum = x + residual (same shape) and normed = rmsNorm(sum) · weight, in one pass over the rows: the
   * residual add and the next norm of a decoder layer. Each output equals what `add` then `rmsNorm` give.
   */
  addRmsNorm(
    x: Tensor,
    residual: Tensor,
    weight: Tensor,
    eps: number,
    label?: string,
  ): Promise<AddRmsNormResult>;
  /** x · sigmoid(x), elementwise. */
  silu(x: Tensor, label?: string): Promise<Tensor>;
  /**
   * silu(x · wGate) · (x · wUp): x [M, K], wGate and wUp [K, N] -> [M, N]; Llama's MLP up to its down
   * projection. Equals `matmul`, `matmul` and `swiglu`; where the backend runs it as one kernel (WebGPU, a
   * few rows) the results are the same to the bit.
   */
  swigluMatmul(x: Tensor, wGate: Tensor, wUp: Tensor, label?: string): Promise<Tensor>;
  /** silu(gate) · up, elementwise, same shapes: Llama's MLP activation. */
  swiglu(gate: Tensor, up: Tensor, label?: string): Promise<Tensor>;
  /** a · b, elementwise: same shape, or b [cols] broadcast over a's rows (as `add`). */
  mul(a: Tensor, b: Tensor, label?: string): Promise<Tensor>;
  /**
   * Rotary position embedding, rotate-half convention: x [T, heads * headDim] (any shape of T rows), row t
   * at position positions[t] (u32 [T]); angle_i = pos · theta^(-2i/headDim) for i < headDim / 2, and
   * out = x · cos + rotate_half(x) · sin with rotate_half([a, b]) = [-b, a] in each head.
   */
  rope(x: Tensor, positions: Tensor, options: RopeOptions): Promise<Tensor>;
  /** Softmax of scale · x along its last dim, causally masked (see CausalSoftmaxOptions); x [..., keys]. */
  causalSoftmax(x: Tensor, options: CausalSoftmaxOptions): Promise<Tensor>;
  /** x [A, B, C] -> [B, A, C]: splits [tokens, heads, headDim] into heads, and merges them back. */
  transpose01(x: Tensor, label?: string): Promise<Tensor>;
  /** The elements [start, start + length) along `dim`, copied on the device; same rank. */
  slice(x: Tensor, dim: number, start: number, length: number, label?: string): Promise<Tensor>;
  /** The inputs joined along `dim` (every other dim equal), on the device. */
  concat(inputs: readonly Tensor[], dim: number, label?: string): Promise<Tensor>;
  /** Per row of x [R, C]: the largest value and its column. No rows give none; rows of no columns: SHAPE. */
  argmax(x: Tensor, label?: string): Promise<ArgmaxResult>;
  /**
   * Mixture-of-experts routing of logits [T, experts]: the k largest per row and their softmax
   * probabilities renormalised over the k (Mixtral's rule, which equals a softmax over the k logits).
   */
  routerTopK(logits: Tensor, k: number, label?: string): Promise<RouterTopKResult>;
  /**
   * Writes x [T, heads * headDim] into cache [heads, capacity, headDim] at positions position .. position +
   * T - 1, in place: cache[h, position + t, :] = x[t, h * headDim .. (h + 1) * headDim). The KV cache's append.
   */
  writeCache(cache: Tensor, x: Tensor, position: number): Promise<void>;
}

export const DEFAULT_LAYER_NORM_EPS = 1e-5;
