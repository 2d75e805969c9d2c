// x [a, b, c] -> out [b, a, c]: out[(j * a + i) * c + l] = x[(i * b + j) * c + l]. One invocation per output
// element; copied as u32 words, so f32 and u32 tensors move bit for bit.

struct Params {
  a: u32,
  b: u32,
  c: u32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let o = flat_index(gid, groups);
  let plane = params.a * params.c;
  if (o >= params.b * plane) {
    return;
  }
  let j = o / plane;
  let rem = o % plane;
  let i = rem / params.c;
  let l = rem % params.c;
  out[o] = x[(i * params.b + j) * params.c + l];
}
