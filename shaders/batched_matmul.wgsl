// C[z] = scale * A[z] · B[z] (or B[z]ᵀ): a [batch, m, k], b [batch, stored, n] (or [batch, stored, k]) ->
// out [batch, m, n]. One invocation per output element, the batch on grid z. b_stride is the elements of one
// batch of b as stored (its capacity rows times its row length), of which only the first rows take part.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  b_stride: u32,
  scale: f32,
}

override TILE_X: u32 = 8u;
override TILE_Y: u32 = 8u;
override TRANSPOSE_B: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(TILE_X, TILE_Y)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let row = gid.y;
  let z = gid.z;
  if (col >= params.n || row >= params.m) {
    return;
  }
  let k = params.k;
  let a_base = (z * params.m + row) * k;
  let b_base = z * params.b_stride;
  var acc = 0.0;
  if (TRANSPOSE_B) {
    let b_row = b_base + col * k;
    for (var p = 0u; p < k; p++) {
      acc += a[a_base + p] * b[b_row + p];
    }
  } else {
    for (var p = 0u; p < k; p++) {
      acc += a[a_base + p] * b[b_base + p * params.n + col];
    }
  }
  out[(z * params.m + row) * params.n + col] = acc * params.scale;
}
