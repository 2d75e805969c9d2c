import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSink } from './record.js';

export interface SoakResult {
  readonly cycles: number;
  readonly backend: string;
  readonly work: 'kernels' | 'strategy';
  readonly cycleMs: number;
  /** RSS after a collection, every tenth of the cycles. */
  readonly rssMiB: readonly number[];
  /** Devices opened, and those the collector had taken back by the end (kernels only). */
  readonly made: number;
  readonly collected: number | null;
  /** From the child's last line to its exit: what a long-lived process's shutdown costs. */
  readonly exitMs: number;
  /** The last RSS sample over the first (the first after warm-up). */
  readonly rssGrowth: number;
}

// The compiled child beside this file in dist/bench, or there from the sources (the tests run bench/ as .ts).
const here = fileURLToPath(import.meta.url);
const child = join(dirname(here), here.endsWith('.ts') ? '../dist/bench' : '.', 'soak-cycles.js');

/** Runs bench/soak-cycles.ts in a process of its own (its exit is part of what is measured). */
export function runSoak(options: {
  cycles: number;
  backend: 'webgpu' | 'gpujs';
  work: 'kernels' | 'strategy';
  timeoutMs?: number;
}): Promise<SoakResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [
        '--expose-gc',
        child,
        '--cycles',
        String(options.cycles),
        '--backend',
        options.backend,
        '--work',
        options.work,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: process.env.CI ?? '' } },
    );
    let out = '';
    let err = '';
    let doneAt = 0;
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!doneAt && out.includes('\ndone\n')) doneAt = performance.now();
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      const exitMs = performance.now() - doneAt;
      if (code !== 0 || !doneAt) {
        const lines = err
          .split('\n')
          .filter((l) => l && !l.startsWith('Warning: ') && !l.includes('third_party'));
        reject(new Error(`soak child ended with ${signal ?? code}: ${lines.slice(-5).join(' | ')}`));
        return;
      }
      const r = JSON.parse(out.slice(0, out.indexOf('\ndone\n'))) as Omit<SoakResult, 'exitMs' | 'rssGrowth'>;
      resolve({ ...r, exitMs, rssGrowth: r.rssMiB[r.rssMiB.length - 1]! / r.rssMiB[0]! - 1 });
    });
  });
}

/**
 * 500 open/work/destroy cycles and 60 whole strategy runs (seed-fits), each in one process: RSS after
 * warm-up, and the exit after the work.
 */
export async function runSoakBench(sink: BenchSink, options: { quick?: boolean } = {}): Promise<void> {
  for (const [work, cycles] of [
    ['kernels', options.quick ? 100 : 500],
    ['strategy', options.quick ? 20 : 60],
  ] as const) {
    const r = await runSoak({ cycles, backend: 'webgpu', work, timeoutMs: cycles * 30_000 });
    sink({
      suite: 'soak',
      name: `${work}/${cycles}`,
      backend: r.backend,
      cycles,
      cycle_ms: r.cycleMs,
      rss_first_mib: r.rssMiB[0],
      rss_last_mib: r.rssMiB[r.rssMiB.length - 1],
      rss_growth_pct: r.rssGrowth * 100,
      devices_made: r.made,
      devices_collected: r.collected,
      exit_ms: r.exitMs,
    });
  }
}
