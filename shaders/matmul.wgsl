{{#if SUBGROUPS}}enable subgroups;
{{/if SUBGROUPS}}
// C[M, N] = act(A[M, K] · B[K, N] + bias[N]) + residual[M, N], row-major, any M, N, K. Three entry points,
// one per kind of device they win on; the epilogue (bias, then ReLU or tanh-GELU, then the residual: a
// decoder layer's x + o_proj(..) in the store instead of an add kernel of its own) is shared. Edges clamp their loads with
// min() and guard only their stores, so no lane leaves early (the subgroup broadcasts need every lane).
// Template values: VEC_B (B read as vec4, needs N % 4 == 0); register_tiled: SUBGROUPS, SG (the adapter's
// fixed subgroup size), RA (A rows each lane loads), TN4 (vec4 column groups per lane); shared_tiled: TM,
// TN (accumulators per invocation); small_m: TM (rows per workgroup), TN4, GATED (0 elsewhere).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  _pad: u32,
}

override WORKGROUP_SIZE: u32 = 64u;
override ACTIVATION: u32 = 0u; // 0 none, 1 relu, 2 gelu (tanh approximation)
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;
// shared_tiled: a WX × WY grid of invocations, each TM × TN outputs, K in steps of BK.
override WX: u32 = 8u;
override WY: u32 = 8u;
override BK: u32 = 16u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
{{#if VEC_B}}@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
{{#else VEC_B}}@group(0) @binding(2) var<storage, read> b: array<f32>;
{{/if VEC_B}}@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
{{#if GATED}}// GATED (small_m only): a second B of B's shape; C = silu(A·B) * (A·B_up), gated.wgsl's swiglu in the store.
{{#if VEC_B}}@group(0) @binding(6) var<storage, read> b_up: array<vec4<f32>>;
{{#else VEC_B}}@group(0) @binding(6) var<storage, read> b_up: array<f32>;
{{/if VEC_B}}{{/if GATED}}
fn epilogue(value: f32, row: u32, col: u32) -> f32 {
  var x = value;
  if (HAS_BIAS) {
    x += bias[col];
  }
  if (ACTIVATION == 1u) {
    x = max(x, 0.0);
  } else if (ACTIVATION == 2u) {
    // tanh saturates long before ±15; the clamp keeps exp() inside tanh from overflowing.
    let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    x = 0.5 * x * (1.0 + tanh(u));
  }
  if (HAS_RESIDUAL) {
    x += residual[row * params.n + col];
  }
  return x;
}

/** Number of vec4 column groups in a row of B (the last one partial when N % 4 != 0). */
fn col_groups() -> u32 {
  return (params.n + 3u) / 4u;
}

/** B[row, 4 * g .. 4 * g + 3] for a group index already clamped below col_groups(), so lanes past the
 * edge read valid memory; the clamp stays out of the K loop. */
// n and groups (= col_groups()) come in as values: on lavapipe a uniform read inside the K loop is a
// per-lane load, as costly as the B load itself.
fn load_b4(row: u32, g: u32, n: u32, groups: u32) -> vec4<f32> {
{{#if VEC_B}}  return b[row * groups + g];
{{#else VEC_B}}  let first = row * n;
  let last = first + n - 1u;
  let col = first + 4u * g;
  return vec4<f32>(b[min(col, last)], b[min(col + 1u, last)], b[min(col + 2u, last)], b[min(col + 3u, last)]);
{{/if VEC_B}}}

{{#if GATED}}
/** load_b4 of b_up. */
fn load_up4(row: u32, g: u32, n: u32, groups: u32) -> vec4<f32> {
{{#if VEC_B}}  return b_up[row * groups + g];
{{#else VEC_B}}  let first = row * n;
  let last = first + n - 1u;
  let col = first + 4u * g;
  return vec4<f32>(b_up[min(col, last)], b_up[min(col + 1u, last)], b_up[min(col + 2u, last)], b_up[min(col + 3u, last)]);
{{/if VEC_B}}}

/** silu(gate) * up, written as gated.wgsl's swiglu writes it, so that the two agree to the bit. */
fn store_gated4(row: u32, group: u32, gate: vec4<f32>, up: vec4<f32>) {
  if (row >= params.m) {
    return;
  }
  for (var e = 0u; e < 4u; e++) {
    let col = 4u * group + e;
    if (col < params.n) {
      let g = gate[e];
      c[row * params.n + col] = g / (1.0 + exp(-g)) * up[e];
    }
  }
}
{{/if GATED}}
fn store4(row: u32, group: u32, value: vec4<f32>) {
  if (row >= params.m) {
    return;
  }
  for (var e = 0u; e < 4u; e++) {
    let col = 4u * group + e;
    if (col < params.n) {
      c[row * params.n + col] = epilogue(value[e], row, col);
    }
  }
}
{{#if SUBGROUPS}}
// Register-tiled, no workgroup memory: what wins on CPU Vulkan (lavapipe). There a load inside a loop
// costs a dozen instructions per lane while an FMA is cheap, so each lane loads RA values of A once and the
// subgroup shares them by broadcast. A subgroup covers SG * RA rows × SG * TN4 * 4 columns.
@compute @workgroup_size(WORKGROUP_SIZE)
fn register_tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
                  @builtin(subgroup_invocation_id) lane: u32) {
  let row0 = wid.y * {{SG}}u * {{RA}}u;
  let group0 = (wid.x * WORKGROUP_SIZE + li) * {{TN4}}u;
{{#for T < RA}}  let a_row{{T}} = min(row0 + lane + {{T}}u * {{SG}}u, params.m - 1u) * params.k;
{{/for T}}{{#for T < RA}}{{#for I < SG}}{{#for Q < TN4}}  var acc{{T}}_{{I}}_{{Q}} = vec4<f32>(0.0);
{{/for Q}}{{/for I}}{{/for T}}  let n = params.n;
  let k_len = params.k;
  let groups = col_groups();
{{#for Q < TN4}}  let g{{Q}} = min(group0 + {{Q}}u, groups - 1u);
{{/for Q}}
  for (var k = 0u; k < k_len; k++) {
{{#for Q < TN4}}    let b{{Q}} = load_b4(k, g{{Q}}, n, groups);
{{/for Q}}{{#for T < RA}}    let a{{T}} = a[a_row{{T}} + k];
{{#for I < SG}}    {
      let av = vec4<f32>(subgroupBroadcast(a{{T}}, {{I}}u));
{{#for Q < TN4}}      acc{{T}}_{{I}}_{{Q}} = fma(av, b{{Q}}, acc{{T}}_{{I}}_{{Q}});
{{/for Q}}    }
{{/for I}}{{/for T}}  }
{{#for T < RA}}{{#for I < SG}}{{#for Q < TN4}}  store4(row0 + {{T}}u * {{SG}}u + {{I}}u, group0 + {{Q}}u, acc{{T}}_{{I}}_{{Q}});
{{/for Q}}{{/for I}}{{/for T}}}
{{/if SUBGROUPS}}
{{#if SHARED}}
// Shared-memory tiled: what wins on discrete GPUs. A BM × BK tile of A (stored transposed) and a BK × BN
// tile of B go to workgroup memory; each invocation accumulates TM × TN outputs from it.
override BM: u32 = WY * {{TM}}u;
override BN: u32 = WX * {{TN}}u;
var<workgroup> a_tile: array<f32, BM * BK>;
var<workgroup> b_tile: array<f32, BK * BN>;

fn load_b(row: u32, col: u32) -> f32 {
{{#if VEC_B}}  return b[row * col_groups() + col / 4u][col % 4u];
{{#else VEC_B}}  return b[row * params.n + col];
{{/if VEC_B}}}

@compute @workgroup_size(WX, WY)
fn shared_tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
                @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
{{#for R < TM}}{{#for J < TN}}  var acc{{R}}_{{J}} = 0.0;
{{/for J}}{{/for R}}
  for (var k0 = 0u; k0 < params.k; k0 += BK) {
    for (var e = li; e < BM * BK; e += WX * WY) {
      let r = m0 + e / BK;
      let kk = k0 + e % BK;
      a_tile[(e % BK) * BM + e / BK] = select(0.0, a[min(r, params.m - 1u) * params.k + min(kk, params.k - 1u)],
                                              r < params.m && kk < params.k);
    }
    for (var e = li; e < BK * BN; e += WX * WY) {
      let kk = k0 + e / BN;
      let col = n0 + e % BN;
      b_tile[e] = select(0.0, load_b(min(kk, params.k - 1u), min(col, params.n - 1u)), col < params.n && kk < params.k);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
{{#for R < TM}}      let a{{R}} = a_tile[kk * BM + lid.y * {{TM}}u + {{R}}u];
{{/for R}}{{#for J < TN}}      let b{{J}} = b_tile[kk * BN + lid.x + {{J}}u * WX];
{{/for J}}{{#for R < TM}}{{#for J < TN}}      acc{{R}}_{{J}} = fma(a{{R}}, b{{J}}, acc{{R}}_{{J}});
{{/for J}}{{/for R}}    }
    workgroupBarrier();
  }
{{#for R < TM}}{{#for J < TN}}  {
    let row = m0 + lid.y * {{TM}}u + {{R}}u;
    let col = n0 + lid.x + {{J}}u * WX;
    if (row < params.m && col < params.n) {
      c[row * params.n + col] = epilogue(acc{{R}}_{{J}}, row, col);
    }
  }
{{/for J}}{{/for R}}}
{{/if SHARED}}
{{#if SMALL_M}}
// Small M (matrix-vector and a few rows): each lane owns TN4 vec4 column groups of TM rows, so every
// element of B is loaded once per TM rows.
@compute @workgroup_size(WORKGROUP_SIZE)
fn small_m(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * {{TM}}u;
  let group0 = (wid.x * WORKGROUP_SIZE + li) * {{TN4}}u;
{{#for R < TM}}  let a_row{{R}} = min(row0 + {{R}}u, params.m - 1u) * params.k;
{{#for Q < TN4}}  var acc{{R}}_{{Q}} = vec4<f32>(0.0);
{{#if GATED}}  var up{{R}}_{{Q}} = vec4<f32>(0.0);
{{/if GATED}}{{/for Q}}{{/for R}}  let n = params.n;
  let k_len = params.k;
  let groups = col_groups();
{{#for Q < TN4}}  let g{{Q}} = min(group0 + {{Q}}u, groups - 1u);
{{/for Q}}
  for (var k = 0u; k < k_len; k++) {
{{#for Q < TN4}}    let b{{Q}} = load_b4(k, g{{Q}}, n, groups);
{{#if GATED}}    let u{{Q}} = load_up4(k, g{{Q}}, n, groups);
{{/if GATED}}{{/for Q}}{{#for R < TM}}    {
      let av = vec4<f32>(a[a_row{{R}} + k]);
{{#for Q < TN4}}      acc{{R}}_{{Q}} = fma(av, b{{Q}}, acc{{R}}_{{Q}});
{{#if GATED}}      up{{R}}_{{Q}} = fma(av, u{{Q}}, up{{R}}_{{Q}});
{{/if GATED}}{{/for Q}}    }
{{/for R}}  }
{{#for R < TM}}{{#for Q < TN4}}{{#if GATED}}  store_gated4(row0 + {{R}}u, group0 + {{Q}}u, acc{{R}}_{{Q}}, up{{R}}_{{Q}});
{{#else GATED}}  store4(row0 + {{R}}u, group0 + {{Q}}u, acc{{R}}_{{Q}});
{{/if GATED}}{{/for Q}}{{/for R}}}
{{/if SMALL_M}}
