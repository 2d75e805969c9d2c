// Mixture-of-experts routing, per row of logits [rows, experts]: the k largest logits in order (largest
// first; the lower expert on ties) and their weights, a softmax over those k alone. That equals Mixtral's
// softmax over all experts, top-k, then renormalising the k to sum to one, without the full softmax.
// One invocation per row: experts are few (8 in Mixtral), so a row is a short scan.

struct Params {
  rows: u32,
  experts: u32,
  k: u32,
}

override WORKGROUP_SIZE: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;

fn flat_index(gid: vec3u, groups: vec3u) -> u32 {
  return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}

// Whether (v, i) comes after (pv, pi) in the order "larger value first, then lower index".
fn after(v: f32, i: u32, pv: f32, pi: u32) -> bool {
  return v < pv || (v == pv && i > pi);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let row = flat_index(gid, groups);
  if (row >= params.rows) {
    return;
  }
  let base = row * params.experts;
  let out = row * params.k;
  // Each pick is the first logit, in that order, after the previous pick: no list of taken experts needed.
  var prev_v = 3.402823e38;
  var prev_i = 0xffffffffu;
  var top = 0.0;
  var total = 0.0;
  for (var j = 0u; j < params.k; j++) {
    var best_v = -3.402823e38;
    var best_i = 0xffffffffu;
    for (var e = 0u; e < params.experts; e++) {
      let v = logits[base + e];
      let later = j == 0u || after(v, e, prev_v, prev_i);
      if (later && (best_i == 0xffffffffu || after(best_v, best_i, v, e))) {
        best_v = v;
        best_i = e;
      }
    }
    if (j == 0u) {
      top = best_v;
    }
    let w = exp(best_v - top);
    indices[out + j] = best_i;
    weights[out + j] = w;
    total += w;
    prev_v = best_v;
    prev_i = best_i;
  }
  for (var j = 0u; j < params.k; j++) {
    weights[out + j] = weights[out + j] / total;
  }
}
