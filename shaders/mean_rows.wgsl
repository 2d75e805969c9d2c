// out[g, c] = mean of x[g * rows_per_group + r, c] over r: x [groups * rows_per_group, cols] -> [groups, cols].

struct Params {
  groups: u32,
  rows_per_group: u32,
  cols: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP_SIZE;
  if (i >= params.groups * params.cols) {
    return;
  }
  let g = i / params.cols;
  let c = i % params.cols;
  let first = g * params.rows_per_group;
  var total = 0.0;
  for (var r = 0u; r < params.rows_per_group; r++) {
    total += x[(first + r) * params.cols + c];
  }
  out[i] = total / f32(params.rows_per_group);
}
