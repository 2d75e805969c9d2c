import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';
import { alive, killAll, runCli, start } from './support/ranks.js';

// `launch --nprocs N -- run FILE` with real rank processes on loopback: each rank opens only its own
// devices, the stages and communications that span ranks go over the wire, and rank 0 alone writes the
// world's one report and trace, with the output checked against the CPU reference as in one process.
const dir = mkdtempSync(join(tmpdir(), 'wgp-ranks-'));
const backend = ['--backend', TEST_BACKEND];
const wireOnly = TEST_BACKEND === 'gpujs';

beforeAll(async () => {
  ensureBuilt();
  // In CI a missing adapter fails here rather than skipping anything.
  await webGpuAvailable();
}, 120_000);
afterEach(() => killAll());

interface Report {
  verdict: string;
  checks: { against: string; maxAbsError: number; tolerance: number; passed: boolean }[];
  pipelined: { devices: { device: number; rank?: number; busyMs: number; peakBytes: number }[] };
  ranks?: {
    worldSize: number;
    devices: number[][];
    clocks: { rank: number; rttMs: number; residualMs: number }[];
    clockResidualMs: number;
  };
}

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  args?: { name?: string };
}

/** The Megatron MLP over 4 devices on 2 ranks of 2: every tensor-parallel group spans both ranks. */
const TP_ACROSS_RANKS = {
  name: 'a Megatron MLP over 4 devices on 2 ranks',
  hardware: { device_count: 4, memory_per_device_bytes: 64 << 20 },
  ranks: [
    [0, 1],
    [2, 3],
  ],
  model: { vocab_size: 512, hidden_size: 128, ffn_size: 256, seq_len: 16, output_size: 8 },
  batch: { batch_size: 8, microbatches: 4 },
  stages: [
    {
      name: 'embed',
      kind: 'embedding',
      tensor_parallel: { mode: 'column', split_dim: 1, devices: [0, 1, 2, 3] },
    },
    {
      name: 'up',
      kind: 'linear',
      activation: 'relu',
      tensor_parallel: { mode: 'column', split_dim: 1, devices: [0, 1, 2, 3] },
    },
    {
      name: 'down',
      kind: 'linear',
      out_features: 128,
      tensor_parallel: { mode: 'row', split_dim: 0, devices: [0, 1, 2, 3] },
    },
    {
      name: 'proj',
      kind: 'linear',
      out_features: 64,
      tensor_parallel: { mode: 'column', split_dim: 1, devices: [0, 1, 2, 3], sizes: [8, 24, 16, 16] },
    },
    { name: 'agg', kind: 'aggregation', device: 0 },
  ],
  communications: [
    // Within one group over both ranks: the hierarchical all-gather and all-reduce across ranks.
    { name: 'gather_embed', op: 'all_gather', from: [0, 1, 2, 3], to: [0, 1, 2, 3] },
    { name: 'sum_down', op: 'all_reduce', from: [0, 1, 2, 3], to: [0, 1, 2, 3] },
    // Onto one device of rank 0: uneven shards, point to point.
    { name: 'gather_proj', op: 'all_gather', from: [0, 1, 2, 3], to: [0] },
  ],
};

/** The same MLP summed onto device 0 alone: each rank adds its two devices' partials before they travel. */
const TP_REDUCE_TO_ONE = {
  ...TP_ACROSS_RANKS,
  name: 'a Megatron MLP over 4 devices on 2 ranks, reduced onto one device',
  stages: TP_ACROSS_RANKS.stages.filter((s) => s.name !== 'proj'),
  communications: [
    TP_ACROSS_RANKS.communications[0]!,
    { name: 'sum_down', op: 'reduce', from: [0, 1, 2, 3], to: [0] },
  ],
};

function writeStrategy(name: string, value: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

function devicesByPid(trace: { traceEvents: TraceEvent[] }): Map<number, number[]> {
  const byPid = new Map<number, number[]>();
  for (const e of trace.traceEvents) {
    if (e.ph !== 'M' || e.name !== 'thread_name' || e.tid === 1000) continue;
    byPid.set(e.pid, [...(byPid.get(e.pid) ?? []), e.tid]);
  }
  return byPid;
}

describe('the strategy runner across ranks', () => {
  it('seed-fits over 3 ranks: the same output check as one process, one report and one trace from rank 0', async () => {
    const trace = join(dir, 'seed-fits.trace.json');
    const [world, single] = [
      await runCli([
        'launch',
        '--nprocs',
        '3',
        '--no-prefix',
        '--',
        'run',
        'examples/seed-fits.json',
        '--json',
        '--trace',
        trace,
        '--no-baseline',
        ...backend,
      ]),
      await runCli(['run', 'examples/seed-fits.json', '--json', '--no-baseline', ...backend]),
    ];
    expect(world.code, world.stderr).toBe(0);
    for (const r of [0, 1, 2]) expect(world.stderr).not.toMatch(new RegExp(`rank ${r} exited with`));
    for (const pid of world.pids.values()) expect(alive(pid)).toBe(false);
    // Only rank 0 wrote: stdout is one JSON report (anything from another rank would break the parse).
    const report = JSON.parse(world.stdout) as Report;
    const one = JSON.parse(single.stdout) as Report;
    expect(single.code, single.stderr).toBe(0);
    expect(report.checks.map((c) => [c.against, c.passed])).toEqual(
      one.checks.map((c) => [c.against, c.passed]),
    );
    expect(report.checks[0]!.passed).toBe(true);
    expect(report.checks[0]!.maxAbsError).toBeLessThanOrEqual(report.checks[0]!.tolerance);
    expect(report.verdict).toBe(one.verdict);
    expect(report.pipelined.devices.map((d) => [d.device, d.rank])).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
    for (const d of report.pipelined.devices) {
      expect(d.busyMs).toBeGreaterThan(0);
      expect(d.peakBytes).toBeGreaterThan(0);
    }
    expect(report.ranks).toMatchObject({ worldSize: 3, devices: [[0], [1], [2]] });
    expect(report.ranks!.clocks.map((c) => c.rank)).toEqual([0, 1, 2]);
    // Half the best of the pings' round trips: well under a millisecond on loopback, and stated.
    expect(report.ranks!.clockResidualMs).toBeGreaterThan(0);
    expect(report.ranks!.clockResidualMs).toBeLessThan(50);
    const events = JSON.parse(readFileSync(trace, 'utf8')) as { traceEvents: TraceEvent[] };
    expect([...devicesByPid(events)].sort((a, b) => a[0] - b[0])).toEqual([
      [1, [0]],
      [2, [1]],
      [3, [2]],
    ]);
    const ranks = events.traceEvents.filter((e) => e.name === 'process_name').map((e) => e.args?.name);
    expect(ranks).toEqual(['rank 0', 'rank 1', 'rank 2']);
    // Every device computed something inside the run's window.
    for (const pid of [1, 2, 3])
      expect(events.traceEvents.some((e) => e.ph === 'X' && e.pid === pid && e.tid !== 1000)).toBe(true);
  }, 240_000);

  it.skipIf(wireOnly).each([
    ['the hierarchical all_gather and all_reduce, then uneven shards point to point', TP_ACROSS_RANKS],
    ['a reduce onto one device, each rank summing its own devices first', TP_REDUCE_TO_ONE],
  ] as const)(
    'tensor-parallel groups that span 2 ranks of 2 devices: %s, the output checked',
    async (_, strategy) => {
      const file = writeStrategy(`${strategy.communications.length}-comms.json`, strategy);
      const out = join(dir, `${strategy.communications.length}-comms.report.json`);
      const r = await runCli([
        'launch',
        '--nprocs',
        '2',
        '--',
        'run',
        file,
        '--json',
        '-o',
        out,
        '--no-baseline',
        ...backend,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain('[rank 0] rank 0 of 2: devices [0, 1] open, running');
      expect(r.stderr).toContain('[rank 1] rank 1 of 2: devices [2, 3] open, running');
      const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
      expect(report.checks[0]).toMatchObject({ passed: true });
      expect(report.pipelined.devices.map((d) => [d.device, d.rank])).toEqual([
        [0, 0],
        [1, 0],
        [2, 1],
        [3, 1],
      ]);
      expect(report.ranks).toMatchObject({ worldSize: 2, devices: TP_ACROSS_RANKS.ranks });
    },
  );

  it.skipIf(wireOnly)(
    "megatron-mlp over 3 ranks: fc1's shards go straight to fc2 on each rank, rank 0 adds fc2's bias to the sum",
    async () => {
      const out = join(dir, 'mlp.report.json');
      const r = await runCli([
        'launch',
        '--nprocs',
        '3',
        '--',
        'run',
        'examples/megatron-mlp.json',
        '--json',
        '-o',
        out,
        '--no-baseline',
        ...backend,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
      expect(report.checks[0]).toMatchObject({ passed: true });
      expect(report.ranks).toMatchObject({ worldSize: 3, devices: [[0], [1], [2]] });
    },
  );

  it.skipIf(wireOnly)(
    'a rank killed mid-run: the others fail naming it (RANK_LOST) within the timeout, and nothing is written',
    async () => {
      const out = join(dir, 'killed.md');
      const run = start([
        'launch',
        '--nprocs',
        '3',
        '--timeout',
        '10s',
        '--',
        'run',
        'examples/seed-fits.json',
        '-o',
        out,
        ...backend,
      ]);
      await run.waitFor(/\[rank 2\] rank 2 of 3: devices \[2\] open, running/, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const killedAt = Date.now();
      process.kill(run.pids.get(2)!, 'SIGKILL');
      const exit = await run.exit;
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      expect(exit.code).not.toBe(0);
      for (const r of [0, 1])
        expect(run.stderr()).toMatch(new RegExp(`\\[rank ${r}\\] error RANK_LOST: rank 2 is gone`));
      expect(run.stderr()).toContain('[launch] rank 2 was killed by SIGKILL');
      for (const pid of run.pids.values()) expect(alive(pid)).toBe(false);
      expect(existsSync(out)).toBe(false);
    },
  );

  it.skipIf(wireOnly)(
    'ranks that do not match the world fail on every rank with the finding and its fix',
    async () => {
      const file = writeStrategy('tp-three.json', TP_ACROSS_RANKS);
      const r = await runCli(['launch', '--nprocs', '3', '--timeout', '10s', '--', 'run', file, ...backend]);
      expect(r.code).not.toBe(0);
      for (const rank of [0, 1, 2])
        expect(r.stderr).toMatch(
          new RegExp(`\\[rank ${rank}\\] error STRATEGY: .*2 ranks, but the world has 3`),
        );
      expect(r.stderr).toContain('--nprocs 2');
    },
  );
});

describe('the ranks section of a strategy file', () => {
  it('every device on exactly one rank: RANKS_DEVICE_MISSING, RANKS_DEVICE_TWICE, RANKS_DEVICE_OUT_OF_RANGE', async () => {
    const file = writeStrategy('bad-ranks.json', {
      ...TP_ACROSS_RANKS,
      ranks: [
        [0, 1],
        [1, 4],
      ],
    });
    const r = await runCli(['validate', file, '--json']);
    expect(r.code).toBe(1);
    const { findings } = JSON.parse(r.stdout) as { findings: { code: string; path: string; fix?: string }[] };
    const ranks = findings.filter((f) => f.code.startsWith('RANKS_'));
    expect(ranks.map((f) => [f.code, f.path])).toEqual([
      ['RANKS_DEVICE_TWICE', '$.ranks[1][0]'],
      ['RANKS_DEVICE_OUT_OF_RANGE', '$.ranks[1][1]'],
      ['RANKS_DEVICE_MISSING', '$.ranks'],
    ]);
    for (const f of ranks) expect(f.fix).toBeTruthy();
  });
});
