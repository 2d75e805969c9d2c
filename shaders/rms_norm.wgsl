// RMS norm along each row of x [rows, cols]: out = v / sqrt(mean(v²) + eps) * weight, with v = x, or with
// RESIDUAL v = x + residual, which is also stored to `sum` (a decoder layer's residual add and the next
// norm in one pass: one dispatch and one round trip of the row through memory fewer).
// One workgroup per row; the sum of squares reduced in workgroup memory, in the same order either way, so
// the fused kernel's `out` equals this kernel's on the stored sum to the bit.
// Template value: RESIDUAL (0 or 1).

struct Params {
  rows: u32,
  cols: u32,
  eps: f32,
}

override WORKGROUP_SIZE: u32 = 64u; // a power of two

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
{{#if RESIDUAL}}@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum: array<f32>;
{{#else RESIDUAL}}@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
{{/if RESIDUAL}}
var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn value(i: u32) -> f32 {
{{#if RESIDUAL}}  return x[i] + residual[i];
{{#else RESIDUAL}}  return x[i];
{{/if RESIDUAL}}}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3u) {
  let row = wid.x + wid.y * groups.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  var s = 0.0;
  for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
    let v = value(base + c);
{{#if RESIDUAL}}    sum[base + c] = v;
{{/if RESIDUAL}}    s += v * v;
  }
  partial[lane] = s;
  workgroupBarrier();
  for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      partial[lane] += partial[lane + stride];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(params.cols) + params.eps);
  for (var c = lane; c < params.cols; c += WORKGROUP_SIZE) {
    out[base + c] = value(base + c) * inv * weight[c];
  }
}
