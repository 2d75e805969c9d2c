// Causally masked softmax of scale * x along each row of x [rows, keys]. Row r is query r % queries at
// position offset + r % queries and sees keys 0 ..= that position; later keys get 0.
// One workgroup per row; reductions in workgroup memory.

struct Params {
  rows: u32,
  keys: u32,
  queries: u32,
  offset: u32,
  scale: f32,
}

override WORKGROUP_SIZE: u32 = 64u; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn workgroup_reduce(value: f32, lane: u32, take_max: bool) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      let other = partial[lane + stride];
      partial[lane] = select(partial[lane] + other, max(partial[lane], other), take_max);
    }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3u) {
  let row = wid.x + wid.y * groups.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.keys;
  let visible = min(params.offset + row % params.queries + 1u, params.keys);
  let scale = params.scale;
  var m = -3.402823e38;
  for (var c = lane; c < visible; c += WORKGROUP_SIZE) {
    m = max(m, x[base + c] * scale);
  }
  let row_max = workgroup_reduce(m, lane, true);
  var s = 0.0;
  for (var c = lane; c < visible; c += WORKGROUP_SIZE) {
    s += exp(x[base + c] * scale - row_max);
  }
  let inv_total = 1.0 / workgroup_reduce(s, lane, false);
  for (var c = lane; c < params.keys; c += WORKGROUP_SIZE) {
    var p = 0.0;
    if (c < visible) {
      p = exp(x[base + c] * scale - row_max) * inv_total;
    }
    out[base + c] = p;
  }
}
