import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin/webgpu-parallel.js');
const built = join(root, 'dist/src/cli/main.js');

/** Builds dist when it is missing or older than a source file; a type error elsewhere still emits. */
export function ensureBuilt(): void {
  const sources = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.endsWith('.ts'),
  );
  const newest = Math.max(...sources.map((f) => statSync(join(root, 'src', f)).mtimeMs));
  if (existsSync(built) && statSync(built).mtimeMs >= newest) return;
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'pipe', timeout: 90_000 });
  } catch (error) {
    if (!existsSync(built)) throw error;
  }
}

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function cli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function expectNoStack(r: { stdout: string; stderr: string }): void {
  expect(r.stdout).not.toContain('    at ');
  expect(r.stderr).not.toContain('    at ');
}
