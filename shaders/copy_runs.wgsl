// Strided copy of runs of `width` words: for run o < outer and group g < groups,
// dst[o * dst_row + g * dst_group + dst_at + w] = src[o * src_row + g * src_group + src_at + w].
// Slice and concat use one group; the KV cache append uses one group per head. Copied as u32 words, so f32
// and u32 tensors move bit for bit. One invocation per word.

struct Params {
  outer: u32,
  groups: u32,
  width: u32,
  src_row: u32,
  src_group: u32,
  src_at: u32,
  dst_row: u32,
  dst_group: u32,
  dst_at: u32,
}

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) grid: vec3u) {
  let i = flat_index(gid, grid);
  let per_run = params.groups * params.width;
  if (i >= params.outer * per_run) {
    return;
  }
  let o = i / per_run;
  let rem = i % per_run;
  let g = rem / params.width;
  let w = rem % params.width;
  dst[o * params.dst_row + g * params.dst_group + params.dst_at + w] =
    src[o * params.src_row + g * params.src_group + params.src_at + w];
}
