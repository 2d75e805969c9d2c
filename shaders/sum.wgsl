// out[i] = in0[i] + in1[i] (+ in2[i] (+ in3[i])): the on-device half of a reduction. One entry point per
// arity, so the auto layout of each binds only the inputs it reads; longer sums chain them.

struct Params {
  count: u32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
@group(0) @binding(4) var<storage, read> in2: array<f32>;
@group(0) @binding(5) var<storage, read> in3: array<f32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum2(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    out[i] = in0[i] + in1[i];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    out[i] = in0[i] + in1[i] + in2[i];
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sum4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    out[i] = in0[i] + in1[i] + in2[i] + in3[i];
  }
}
