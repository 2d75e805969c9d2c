/**
 * WebGPU caps each grid dimension (65535 workgroups by default); larger 1-D grids fold into y. No items give
 * no workgroups, which `GpuDevice.dispatch` skips: a kernel over an empty tensor dispatches nothing.
 */
export function grid1d(items: number, perWorkgroup: number, maxPerDimension = 65535): [number, number] {
  if (items === 0) return [0, 1];
  const groups = Math.max(1, Math.ceil(items / perWorkgroup));
  if (groups <= maxPerDimension) return [groups, 1];
  const y = Math.ceil(groups / maxPerDimension);
  return [Math.ceil(groups / y), y];
}
