// out[i] = in0[i] + in1[i] (+ in2[i] (+ in3[i])): the on-device half of a reduction; longer sums chain
// passes. The third and fourth inputs are template branches: a bind group layout names exactly the bindings
// a shader declares.

struct Params {
  count: u32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> in0: array<f32>;
@group(0) @binding(3) var<storage, read> in1: array<f32>;
{{#if IN2}}@group(0) @binding(4) var<storage, read> in2: array<f32>;
{{/if IN2}}{{#if IN3}}@group(0) @binding(5) var<storage, read> in3: array<f32>;
{{/if IN3}}
fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = flat_index(gid, groups);
  if (i < params.count) {
    var total = in0[i] + in1[i];
{{#if IN2}}    total += in2[i];
{{/if IN2}}{{#if IN3}}    total += in3[i];
{{/if IN3}}    out[i] = total;
  }
}
