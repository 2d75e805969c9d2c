/**
 * out[i] = sum of inputs[k][i]. One pass over memory with the common source counts unrolled: the host sum
 * is bandwidth-bound, so each output element is loaded and stored once.
 */
export function sumInto(out: Float32Array, inputs: readonly Float32Array[]): void {
  const n = out.length;
  const [a, b, c, d] = inputs;
  if (inputs.length === 1) {
    out.set(a!.subarray(0, n));
    return;
  }
  if (inputs.length === 2) {
    for (let i = 0; i < n; i++) out[i] = a![i]! + b![i]!;
    return;
  }
  if (inputs.length === 3) {
    for (let i = 0; i < n; i++) out[i] = a![i]! + b![i]! + c![i]!;
    return;
  }
  for (let i = 0; i < n; i++) out[i] = a![i]! + b![i]! + c![i]! + d![i]!;
  for (let k = 4; k < inputs.length; k++) {
    const x = inputs[k]!;
    for (let i = 0; i < n; i++) out[i]! += x[i]!;
  }
}
