/** The module web/build.ts makes of shaders/*.wgsl for the browser bundle: each shader's source by name. */
declare module 'webgpu-parallel:shaders' {
  const shaders: Readonly<Record<string, string>>;
  export default shaders;
}
