/** A uniform block of 32-bit fields, in the order the shader's Params struct declares them. */
export function params(fields: readonly (readonly ['u32' | 'f32', number])[]): ArrayBuffer {
  const view = new DataView(new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16)));
  fields.forEach(([type, value], i) => {
    if (type === 'u32') view.setUint32(i * 4, value, true);
    else view.setFloat32(i * 4, value, true);
  });
  return view.buffer;
}
