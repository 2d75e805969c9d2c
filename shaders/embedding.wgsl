// out[t, :] = table[ids[t] - row_offset, :] when the id falls in this table's rows, zeros otherwise.
// Zeros for foreign ids are what vocab-parallel embedding sums across devices.

struct Params {
  tokens: u32,
  hidden: u32,
  vocab_rows: u32,
  row_offset: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  // Large outputs need more than 65535 workgroups in x; the grid folds into y.
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= params.tokens * params.hidden) {
    return;
  }
  let t = i / params.hidden;
  let h = i % params.hidden;
  let id = ids[t];
  var value = 0.0;
  if (id >= params.row_offset && id - params.row_offset < params.vocab_rows) {
    value = table[(id - params.row_offset) * params.hidden + h];
  }
  out[i] = value;
}
