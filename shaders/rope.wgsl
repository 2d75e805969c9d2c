// Rotary position embedding, rotate-half: x [rows, cols], cols whole heads of head_dim; row r at position
// positions[r]. One invocation per pair (i, i + head_dim / 2) of a head, angle = pos * theta^(-2i/head_dim).

struct Params {
  rows: u32,
  cols: u32,
  head_dim: u32,
  theta: f32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let pair = flat_index(gid, groups);
  let pairs_per_row = params.cols / 2u;
  if (pair >= params.rows * pairs_per_row) {
    return;
  }
  let half_dim = params.head_dim / 2u;
  let r = pair / pairs_per_row;
  let rem = pair % pairs_per_row;
  let i = rem % half_dim;
  let lo_at = r * params.cols + (rem / half_dim) * params.head_dim + i;
  let hi_at = lo_at + half_dim;
  let angle = f32(positions[r]) * pow(params.theta, -2.0 * f32(i) / f32(params.head_dim));
  let c = cos(angle);
  let s = sin(angle);
  let lo = x[lo_at];
  let hi = x[hi_at];
  out[lo_at] = lo * c - hi * s;
  out[hi_at] = hi * c + lo * s;
}
