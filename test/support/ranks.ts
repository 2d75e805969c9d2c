import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { root } from './cli.js';

export const BIN = join(root, 'bin/webgpu-parallel.js');

/** A launcher (or any command) started by a test: its output as it comes, its ranks' pids, its exit. */
export interface Started {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Ranks' pids, from the launcher's `[launch] rank R of N: pid P` lines. */
  readonly pids: Map<number, number>;
  /** Resolves when the output matches `re` (rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

const everything = new Set<Started>();

/** Starts `argv` (default: node on the CLI) in a process group of its own, collecting its output. */
export function start(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  child?: ChildProcess,
): Started {
  const proc =
    child ??
    spawn(process.execPath, [BIN, ...argv], {
      cwd: root,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  let out = '';
  let err = '';
  const pids = new Map<number, number>();
  const watchers = new Set<() => void>();
  const began = Date.now();
  proc.stdout!.on('data', (d: Buffer) => {
    out += d;
    for (const w of watchers) w();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d;
    for (const m of String(d).matchAll(/\[launch\] rank (\d+) of \d+: pid (\d+)/g))
      pids.set(Number(m[1]), Number(m[2]));
    for (const w of watchers) w();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - began })),
  );
  const started: Started = {
    child: proc,
    stdout: () => out,
    stderr: () => err,
    pids,
    exit,
    waitFor: (re, ms = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(out) || re.test(err)) {
            clearTimeout(timer);
            watchers.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no ${re} within ${ms} ms\nstdout:\n${out}\nstderr:\n${err}`));
        }, ms);
        watchers.add(check);
        check();
      }),
  };
  everything.add(started);
  void exit.then(() => everything.delete(started));
  return started;
}

/** Runs the CLI to its end. */
export async function runCli(argv: readonly string[], env?: NodeJS.ProcessEnv) {
  const s = start(argv, env);
  const result = await s.exit;
  return { ...result, stdout: s.stdout(), stderr: s.stderr(), pids: s.pids };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills whatever a test started and is still running: launchers' groups and every rank seen. */
export function killAll(): void {
  for (const s of everything) {
    for (const pid of s.pids.values()) kill(-pid);
    if (s.child.pid) kill(-s.child.pid);
  }
  everything.clear();
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Records of `comm-test --json` from rank 0's prefixed lines. */
export function records(stdout: string): Record<string, number | string>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('[rank 0] {'))
    .map((l) => JSON.parse(l.slice('[rank 0] '.length)) as Record<string, number | string>);
}
