// Per row of x [rows, cols]: the largest value and its column, the lowest column on ties.
// One workgroup per row; (value, column) pairs reduced in workgroup memory.

struct Params {
  rows: u32,
  cols: u32,
}

override WORKGROUP_SIZE: u32 = 64u; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> values: array<f32>;

var<workgroup> best_value: array<f32, WORKGROUP_SIZE>;
var<workgroup> best_index: array<u32, WORKGROUP_SIZE>;

const NONE: u32 = 0xffffffffu;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3u) {
  let row = wid.x + wid.y * groups.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  // A lane without columns holds NONE, which loses every comparison.
  var v = -3.402823e38;
  var at = NONE;
  if (lane < params.cols) {
    v = x[base + lane];
    at = lane;
  }
  for (var c = lane + WORKGROUP_SIZE; c < params.cols; c += WORKGROUP_SIZE) {
    let candidate = x[base + c];
    if (candidate > v) {
      v = candidate;
      at = c;
    }
  }
  best_value[lane] = v;
  best_index[lane] = at;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      let ov = best_value[lane + stride];
      let oi = best_index[lane + stride];
      let mv = best_value[lane];
      let mi = best_index[lane];
      if (oi != NONE && (mi == NONE || ov > mv || (ov == mv && oi < mi))) {
        best_value[lane] = ov;
        best_index[lane] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    indices[row] = best_index[0];
    values[row] = best_value[0];
  }
}
