import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, root } from './support/cli.js';
import { TEST_BACKEND } from './support/devices.js';

/**
 * The package as a user installs it: packed, installed into a scratch project, type-checked with a strict
 * tsc and no settings beyond strict and the module kind. Run once, with the WebGPU pass of the tests.
 */
let dir = '';
let tarball = '';

beforeAll(() => {
  if (TEST_BACKEND !== 'webgpu') return;
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'webgpu-parallel-package-'));
  execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: root, stdio: 'pipe' });
  tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(TEST_BACKEND !== 'webgpu')('the packed package', () => {
  it('ships the library, the CLI and the shaders, and no bench or test code', () => {
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(files).toContain('package/dist/src/index.d.ts');
    expect(files).toContain('package/bin/webgpu-parallel.js');
    expect(files).toContain('package/shaders/matmul.wgsl');
    expect(files.filter((f) => /\/(bench|test)\//.test(f))).toEqual([]);
  });

  it("type-checks in a consumer's project with tsc --strict", () => {
    const project = join(dir, 'consumer');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module' }));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', noEmit: true },
      }),
    );
    writeFileSync(
      join(project, 'index.ts'),
      [
        "import { DeviceGroup, generate, LlamaModel, type Tensor } from 'webgpu-parallel';",
        'const group = await DeviceGroup.open({ count: 2 });',
        "using model = await LlamaModel.load(group, './ckpt', { plan: { tp: 2, pp: 1 } });",
        'const result = await generate(model, [[1, 2, 3]], { maxNewTokens: 4 });',
        'const first: number[] = result.tokens[0]!;',
        "const t: Tensor = group.devices[0]!.upload(new Float32Array(4), [2, 2], 'x');",
        't.free();',
        'group.destroy();',
        'console.log(first, model.expertLoad?.summary().steps);',
      ].join('\n'),
    );
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      cwd: project,
      stdio: 'pipe',
      timeout: 120_000,
    });
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const out = (() => {
      try {
        return execFileSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
      } catch (error) {
        return (error as { stdout: string }).stdout;
      }
    })();
    expect(out).toBe('');
  }, 180_000);
});
