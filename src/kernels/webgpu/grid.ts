/** WebGPU caps each grid dimension (65535 workgroups by default); larger 1-D grids fold into y. */
export function grid1d(items: number, perWorkgroup: number, maxPerDimension = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(items / perWorkgroup));
  if (groups <= maxPerDimension) return [groups, 1];
  const y = Math.ceil(groups / maxPerDimension);
  return [Math.ceil(groups / y), y];
}
