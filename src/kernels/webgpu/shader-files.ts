import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParallelError } from '../../errors.js';

/** The package's shaders/ folder, found from this file whether it runs from src/ or from dist/src/. */
function shaderDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'shaders');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new ParallelError('IO', 'cannot find the shaders/ folder of webgpu-parallel');
    dir = parent;
  }
}

/** The WGSL source of `shaders/NAME.wgsl`, read from the package's files. */
export function loadShader(name: string): string {
  const path = join(shaderDir(), `${name}.wgsl`);
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ParallelError('IO', `cannot read shader ${path}`, { cause });
  }
}
