import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, root } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * bin/webgpu-parallel.js runs the CLI in a child to filter Dawn's messages. As a user sees it: the exit
 * status a shell gives a signal, the child gone when the wrapper is killed (even by SIGKILL), and the
 * progress bar drawn through the wrapper's pipe when the terminal is one.
 */
const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';
const bin = join(root, 'bin/webgpu-parallel.js');
let dir = '';

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'webgpu-parallel-wrapper-'));
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The parent pid of a process, from /proc (field 4 of its stat, after the parenthesised name). */
function parentOf(pid: string): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** The wrapper's CLI child, once it has started. */
async function childOf(pid: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const child = readdirSync('/proc').find((p) => /^\d+$/.test(p) && parentOf(p) === pid);
    if (child) return Number(child);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`wrapper ${pid} started no child`);
}

/** Running (a zombie left for its parent to reap has ended too). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe.skipIf(!available)('the bin wrapper', () => {
  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`exits ${status} on ${signal}, and so does its child`, async () => {
      const wrapper = spawn(process.execPath, [bin, 'run', 'examples/seed-fits.json', '--no-progress'], {
        cwd: root,
        stdio: 'ignore',
      });
      const child = await childOf(wrapper.pid!);
      const exited = new Promise<number | null>((r) => wrapper.on('exit', (code) => r(code)));
      wrapper.kill(signal);
      expect(await exited).toBe(status);
      expect(alive(child)).toBe(false);
    }, 30_000);
  }

  it('takes its child with it when killed by SIGKILL', async () => {
    const wrapper = spawn(process.execPath, [bin, 'run', 'examples/seed-fits.json', '--no-progress'], {
      cwd: root,
      stdio: 'ignore',
    });
    const child = await childOf(wrapper.pid!);
    wrapper.kill('SIGKILL');
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 100));
      gone = !alive(child);
    }
    expect(gone).toBe(true);
  }, 30_000);

  it('draws the progress bar through its pipe when its stderr is a terminal', () => {
    const log = join(dir, 'tty.log');
    // `script` gives the wrapper a terminal; the CLI child only ever sees the wrapper's pipe.
    execFileSync(
      'script',
      ['-qec', `${process.execPath} ${bin} run examples/seed-fits.json -o ${join(dir, 'r.md')}`, log],
      {
        cwd: root,
        stdio: 'ignore',
        timeout: 60_000,
      },
    );
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(/running \[[=-]+\] \d+\/\d+ microbatches/);
    expect(text).not.toContain('Warning: ');
  }, 60_000);
});
