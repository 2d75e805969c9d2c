import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/** The repository root, found from this file whether it runs as web/build.ts or compiled into dist/web/. */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'web', 'index.html'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the webgpu-parallel repository (web/index.html)');
    dir = parent;
  }
  return dir;
}

export const ROOT = repositoryRoot();
/** Under dist/ (not shipped: the package's files are dist/src); dist/web is where tsc puts web/'s own code. */
export const DEFAULT_OUT_DIR = join(ROOT, 'dist', 'page');

const NODE_BUILTINS = new Set(builtinModules);
/** Packages that only run under Node: reaching one from the page's code is a build error. */
const NODE_PACKAGES = new Set(['gpu.js', 'env-paths', 'cli-progress', 'commander', '@grpc/grpc-js']);
const SHADERS_MODULE = 'webgpu-parallel:shaders';

/**
 * The browser seams. A module `x.ts` with a sibling `x.browser.ts` is Node's implementation of something the
 * page does another way (devices from navigator.gpu, shaders from the bundle, no file system); the page's
 * bundle takes the twin wherever `x.js` is imported. The npm package `webgpu` (Dawn's native addon) becomes
 * a module that fails to load, and anything else of Node's that the page's code reaches fails the build, so
 * the bundle provably holds nothing of Node or Dawn.
 */
function browserSeams(): esbuild.Plugin {
  return {
    name: 'webgpu-parallel-browser-seams',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
        if (!args.importer.startsWith(join(ROOT, 'src'))) return undefined;
        const twin = resolve(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts'));
        if (twin === args.importer || !existsSync(twin)) return undefined;
        return { path: twin };
      });
      build.onResolve({ filter: /^webgpu$/ }, () => ({
        path: join(ROOT, 'src/runtime/webgpu/dawn-bindings.browser.ts'),
      }));
      build.onResolve({ filter: new RegExp(`^${SHADERS_MODULE}$`) }, () => ({
        path: SHADERS_MODULE,
        namespace: 'shaders',
      }));
      build.onLoad({ filter: /.*/, namespace: 'shaders' }, () => {
        const dir = join(ROOT, 'shaders');
        const files = readdirSync(dir).filter((f) => f.endsWith('.wgsl'));
        const sources = Object.fromEntries(
          files.map((f) => [f.slice(0, -'.wgsl'.length), readFileSync(join(dir, f), 'utf8')]),
        );
        return {
          contents: `export default ${JSON.stringify(sources)};`,
          loader: 'js',
          watchFiles: files.map((f) => join(dir, f)),
        };
      });
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        const bare = args.path.replace(/^node:/, '');
        const pkg = args.path.startsWith('@')
          ? args.path.split('/').slice(0, 2).join('/')
          : bare.split('/')[0]!;
        if (!args.path.startsWith('node:') && !NODE_BUILTINS.has(bare) && !NODE_PACKAGES.has(pkg))
          return undefined;
        return {
          errors: [
            {
              text: `${args.path} is Node's, imported by ${relative(ROOT, args.importer)}`,
              notes: [
                { text: 'put the Node-only part in a module with a .browser.ts twin (see web/build.ts)' },
              ],
            },
          ],
        };
      });
    },
  };
}

export interface WebBuild {
  readonly outDir: string;
  /** Every source file in the bundles, relative to the repository root. */
  readonly inputs: readonly string[];
  /** Bytes of each output file, by name. */
  readonly outputs: Readonly<Record<string, number>>;
}

/**
 * Builds the page (web/index.html + web/main.ts) and the library's browser bundle (src/browser.ts, for pages
 * of one's own) into `outDir` as ES modules.
 */
export async function buildWeb(outDir = DEFAULT_OUT_DIR): Promise<WebBuild> {
  mkdirSync(outDir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'web/main.ts', 'webgpu-parallel': 'src/browser.ts' },
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    plugins: [browserSeams()],
  });
  writeFileSync(join(outDir, 'index.html'), readFileSync(join(ROOT, 'web', 'index.html')));
  const outputs: Record<string, number> = {};
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    if (!file.endsWith('.map')) outputs[relative(outDir, resolve(ROOT, file))] = out.bytes;
  }
  return { outDir, inputs: Object.keys(result.metafile.inputs), outputs };
}
