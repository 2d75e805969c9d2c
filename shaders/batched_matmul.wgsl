// C[z] = scale * A[z] · B[z] (or B[z]ᵀ): a [batch, m, k], b [batch, stored, n] (or [batch, stored, k]) ->
// out [batch, m, n], the batch on grid z. b_stride is the elements of one batch of b as stored (its capacity
// rows times its row length), of which only the first rows take part.
// Register-tiled without workgroup memory, which is what wins on CPU Vulkan (lavapipe): there a load costs
// far more than an FMA, so each invocation reuses every loaded value across a block of outputs. Edges clamp
// their loads with min() and guard only their stores, so the k loop has no branches.
// Template values: TB (b transposed); TM (rows per invocation); plain: TN4 (vec4 column groups per
// invocation), VEC (b read as vec4, needs n % 4 == 0); transposed: TN (columns per invocation), VEC (a and
// b read as vec4 along k, needs k % 4 == 0).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  b_stride: u32,
  scale: f32,
}

override WX: u32 = 8u;
override WY: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
{{#if TB}}{{#if VEC}}@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
{{#else VEC}}@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
{{/if VEC}}{{#else TB}}@group(0) @binding(1) var<storage, read> a: array<f32>;
{{#if VEC}}@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
{{#else VEC}}@group(0) @binding(2) var<storage, read> b: array<f32>;
{{/if VEC}}{{/if TB}}@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn store(z: u32, row: u32, col: u32, value: f32) {
  if (row < params.m && col < params.n) {
    out[(z * params.m + row) * params.n + col] = value * params.scale;
  }
}
{{#if TB}}
// C[i, j] = Σ_p A[i, p] · B[j, p]: both operands run along k, so with VEC each load brings four terms.
@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = params.m;
  let n = params.n;
  let row0 = gid.y * {{TM}}u;
  let col0 = gid.x * {{TN}}u;
  if (row0 >= m || col0 >= n) {
    return;
  }
  let z = gid.z;
{{#if VEC}}  let steps = params.k / 4u;
{{#else VEC}}  let steps = params.k;
{{/if VEC}}  let a_base = z * m * steps;
{{#if VEC}}  let b_base = z * (params.b_stride / 4u);
{{#else VEC}}  let b_base = z * params.b_stride;
{{/if VEC}}{{#for R < TM}}  let a_row{{R}} = a_base + min(row0 + {{R}}u, m - 1u) * steps;
{{/for R}}{{#for J < TN}}  let b_row{{J}} = b_base + min(col0 + {{J}}u, n - 1u) * steps;
{{/for J}}{{#for R < TM}}{{#for J < TN}}  var acc{{R}}_{{J}} = {{#if VEC}}vec4<f32>(0.0){{#else VEC}}0.0{{/if VEC}};
{{/for J}}{{/for R}}  for (var p = 0u; p < steps; p++) {
{{#for R < TM}}    let a{{R}} = a[a_row{{R}} + p];
{{/for R}}{{#for J < TN}}    let b{{J}} = b[b_row{{J}} + p];
{{/for J}}{{#for R < TM}}{{#for J < TN}}    acc{{R}}_{{J}} = fma(a{{R}}, b{{J}}, acc{{R}}_{{J}});
{{/for J}}{{/for R}}  }
{{#for R < TM}}{{#for J < TN}}  store(z, row0 + {{R}}u, col0 + {{J}}u, {{#if VEC}}dot(acc{{R}}_{{J}}, vec4<f32>(1.0)){{#else VEC}}acc{{R}}_{{J}}{{/if VEC}});
{{/for J}}{{/for R}}}
{{#else TB}}
// B[row, 4g .. 4g + 3] for a group g already clamped to the row, so edge lanes read valid memory.
fn load_b4(row_start: u32, g: u32, last: u32) -> vec4<f32> {
{{#if VEC}}  return b[row_start / 4u + g];
{{#else VEC}}  let col = row_start + 4u * g;
  return vec4<f32>(b[min(col, last)], b[min(col + 1u, last)], b[min(col + 2u, last)], b[min(col + 3u, last)]);
{{/if VEC}}}

fn store4(z: u32, row: u32, col: u32, value: vec4<f32>) {
  store(z, row, col, value.x);
  store(z, row, col + 1u, value.y);
  store(z, row, col + 2u, value.z);
  store(z, row, col + 3u, value.w);
}

// C[i, 4g ..] += A[i, p] · B[p, 4g ..]: a row of b is contiguous in n, so b comes four columns a load.
@compute @workgroup_size(WX, WY)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let m = params.m;
  let n = params.n;
  let k_len = params.k;
  let row0 = gid.y * {{TM}}u;
  let group0 = gid.x * {{TN4}}u;
  if (row0 >= m || group0 * 4u >= n) {
    return;
  }
  let z = gid.z;
  let groups = (n + 3u) / 4u;
  let a_base = z * m * k_len;
  let b_base = z * params.b_stride;
{{#for R < TM}}  let a_row{{R}} = a_base + min(row0 + {{R}}u, m - 1u) * k_len;
{{/for R}}{{#for Q < TN4}}  let g{{Q}} = min(group0 + {{Q}}u, groups - 1u);
{{/for Q}}{{#for R < TM}}{{#for Q < TN4}}  var acc{{R}}_{{Q}} = vec4<f32>(0.0);
{{/for Q}}{{/for R}}  for (var p = 0u; p < k_len; p++) {
    let row_start = b_base + p * n;
    let last = row_start + n - 1u;
{{#for Q < TN4}}    let b{{Q}} = load_b4(row_start, g{{Q}}, last);
{{/for Q}}{{#for R < TM}}    let a{{R}} = vec4<f32>(a[a_row{{R}} + p]);
{{#for Q < TN4}}    acc{{R}}_{{Q}} = fma(a{{R}}, b{{Q}}, acc{{R}}_{{Q}});
{{/for Q}}{{/for R}}  }
{{#for R < TM}}{{#for Q < TN4}}  store4(z, row0 + {{R}}u, (group0 + {{Q}}u) * 4u, acc{{R}}_{{Q}});
{{/for Q}}{{/for R}}}
{{/if TB}}
