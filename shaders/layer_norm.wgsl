// Per row r of x [rows, cols]: out = (x - mean) / sqrt(var + eps) * gamma + beta.
// One workgroup per row; a tree reduction in workgroup memory gives the row's sum and sum of squares of
// the centred values (two passes, so a large mean does not cancel the variance).

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
}

override WORKGROUP_SIZE: u32 = 64u; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn workgroup_sum(value: f32, lane: u32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3u) {
  let row = wid.x + wid.y * groups.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  var s = 0.0;
  for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
    s += x[base + c];
  }
  let mean = workgroup_sum(s, lane) / f32(params.cols);
  var sq = 0.0;
  for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
    let d = x[base + c] - mean;
    sq += d * d;
  }
  let inv_std = inverseSqrt(workgroup_sum(sq, lane) / f32(params.cols) + params.eps);
  for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
    out[base + c] = (x[base + c] - mean) * inv_std * gamma[c] + beta[c];
  }
}
