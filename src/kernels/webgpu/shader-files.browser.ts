import shaders from 'webgpu-parallel:shaders';
import { ParallelError } from '../../errors.js';

/** The page's twin of shader-files.ts: the build put every shaders/*.wgsl into the bundle. */
export function loadShader(name: string): string {
  const code = shaders[name];
  if (code === undefined) {
    throw new ParallelError('IO', `shader ${name} is not in the browser bundle`, {
      fix: 'rebuild the page (npm run web): the build bundles every shaders/*.wgsl',
    });
  }
  return code;
}
