// Two-operand elementwise products. swiglu: out[i] = silu(a[i]) * b[i] (same shapes, period = count);
// mul: out[i] = a[i] * b[i % period] (period = len(b): the same shape or a row vector over a's rows).

struct Params {
  count: u32,
  period: u32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn swiglu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    let g = a[i];
    out[i] = g / (1.0 + exp(-g)) * b[i % params.period];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    out[i] = a[i] * b[i % params.period];
  }
}
