import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from './support/cli.js';
import { TEST_BACKEND } from './support/devices.js';
import { alive, freePort, killAll, start } from './support/ranks.js';

// Faults across real rank processes on loopback: every surviving rank must fail with a typed error that
// names the culprit, within the timeout, and the launcher must leave no process or port behind.
const TOKEN = { ...process.env, WEBGPU_PARALLEL_TOKEN: 'd'.repeat(64) };
const LOOP = [
  'comm-test',
  '--ops',
  'all_reduce',
  '--sizes',
  '64KiB',
  '--iters',
  '1000000',
  '--print-iterations',
];

beforeAll(() => ensureBuilt(), 120_000);
afterEach(() => killAll());

function node(rank: number, nnodes: number, port: number, extra: string[], command: string[]) {
  return start(
    [
      'launch',
      '--nnodes',
      String(nnodes),
      '--node-rank',
      String(rank),
      '--master',
      `127.0.0.1:${port}`,
      '--timeout',
      '2s',
      ...extra,
      '--',
      ...command,
    ],
    TOKEN,
  );
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe.skipIf(TEST_BACKEND === 'gpujs')('faults across ranks', () => {
  it('a rank killed mid-run: every other rank exits non-zero naming it (RANK_LOST), well within 30 s', async () => {
    const run = start(['launch', '--nprocs', '3', '--', ...LOOP]);
    await run.waitFor(/\[rank 2\] iteration all_reduce \d+ 3/);
    const killedAt = Date.now();
    process.kill(run.pids.get(2)!, 'SIGKILL');
    const exit = await run.exit;
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(exit.code).not.toBe(0);
    for (const r of [0, 1])
      expect(run.stderr()).toMatch(new RegExp(`\\[rank ${r}\\] error RANK_LOST: rank 2 is gone`));
    expect(run.stderr()).toContain('[launch] rank 2 was killed by SIGKILL');
    for (const pid of run.pids.values()) expect(alive(pid)).toBe(false);
  });

  it('a rank that stops answering (SIGSTOP): the others fail naming it within the 3 s timeout', async () => {
    const run = start(['launch', '--nprocs', '3', '--timeout', '3s', '--', ...LOOP]);
    await run.waitFor(/\[rank 1\] iteration all_reduce \d+ 3/);
    process.kill(run.pids.get(1)!, 'SIGSTOP');
    const stoppedAt = Date.now();
    await run.waitFor(/\[rank 0\] error (TIMEOUT|RANK_LOST): .*rank 1/, 10_000);
    await run.waitFor(/\[rank 2\] error (TIMEOUT|RANK_LOST): .*rank 1/, 10_000);
    expect(Date.now() - stoppedAt).toBeLessThan(8000);
    process.kill(run.pids.get(1)!, 'SIGKILL');
    expect((await run.exit).code).not.toBe(0);
  });

  it('Ctrl-C on the launcher stops every rank and frees the store port', async () => {
    const port = await freePort();
    const run = start(['launch', '--nprocs', '2', '--master', `127.0.0.1:${port}`, '--', ...LOOP]);
    await run.waitFor(/\[rank 1\] iteration all_reduce \d+ 2/);
    expect(await portIsFree(port)).toBe(false);
    process.kill(run.child.pid!, 'SIGINT');
    const exit = await run.exit;
    expect(exit.code).toBe(130);
    expect(run.stderr()).toContain('[launch] stopping ranks 0, 1: interrupted');
    for (const pid of run.pids.values()) expect(alive(pid)).toBe(false);
    expect(await portIsFree(port)).toBe(true);
  });

  it('a rank that never comes: the others fail with TIMEOUT naming it', async () => {
    const port = await freePort();
    const run = node(0, 2, port, [], ['comm-test', '--sizes', '1KiB']);
    const exit = await run.exit;
    expect(exit.code).not.toBe(0);
    expect(exit.ms).toBeLessThan(10_000);
    expect(run.stderr()).toMatch(/\[rank 0\] error TIMEOUT: rank 1 did not join within 2000 ms/);
  });

  it('a rank that joins twice is refused (RENDEZVOUS); the world runs on with the first', async () => {
    const port = await freePort();
    // Long enough that the duplicate, started last on a loaded machine, still finds the store serving.
    const command = ['comm-test', '--json', '--ops', 'all_reduce', '--sizes', '1KiB', '--iters', '1000'];
    const world = [
      node(0, 2, port, [], command),
      node(1, 2, port, [], command),
      node(1, 2, port, [], command),
    ];
    const exits = await Promise.all(world.map((w) => w.exit));
    const refused = world.filter((w) => /error RENDEZVOUS: rank 1 joined (twice|late)/.test(w.stderr()));
    expect(refused).toHaveLength(1);
    expect(exits.filter((e) => e.code === 0)).toHaveLength(2);
    expect(world[0]!.stdout()).toContain('"wrong":0');
  });

  it('a rank with another strategy file is refused, and the whole world stops saying why', async () => {
    const port = await freePort();
    const [a, b] = ['{"a":1}', '{"a":2}'].map((text, i) => {
      const file = join(tmpdir(), `wgp-strategy-${process.pid}-${i}.json`);
      writeFileSync(file, text);
      return file;
    });
    const world = [
      node(0, 2, port, ['--strategy', a!], ['comm-test']),
      node(1, 2, port, ['--strategy', b!], ['comm-test']),
    ];
    const exits = await Promise.all(world.map((w) => w.exit));
    for (const e of exits) expect(e.code).not.toBe(0);
    expect(world[1]!.stderr()).toMatch(/error RENDEZVOUS: rank 1 runs another strategy file than rank 0/);
    expect(world[0]!.stderr()).toMatch(
      /error RENDEZVOUS: the world cannot start: rank 1 runs another strategy file/,
    );
  });

  it('a rank without the world token is refused by the store; the others time out naming it', async () => {
    const port = await freePort();
    const good = node(0, 2, port, [], ['comm-test']);
    const bad = start(
      [
        'launch',
        '--nnodes',
        '2',
        '--node-rank',
        '1',
        '--master',
        `127.0.0.1:${port}`,
        '--timeout',
        '2s',
        '--',
        'comm-test',
      ],
      { ...process.env, WEBGPU_PARALLEL_TOKEN: 'e'.repeat(64) },
    );
    const [g, b] = await Promise.all([good.exit, bad.exit]);
    expect(b.code).not.toBe(0);
    expect(bad.stderr()).toMatch(/error RENDEZVOUS: the store at 127\.0\.0\.1:\d+ refused this rank's token/);
    expect(g.code).not.toBe(0);
    expect(good.stderr()).toMatch(/error TIMEOUT: rank 1 did not join/);
  });

  it('several nodes without a token, or binding loopback for a remote master, are refused before anything starts', async () => {
    const env = { ...process.env };
    delete env.WEBGPU_PARALLEL_TOKEN;
    const noToken = start(['launch', '--nnodes', '2', '--master', '127.0.0.1:29599', '--', 'comm-test'], env);
    expect((await noToken.exit).code).toBe(1);
    expect(noToken.stderr()).toContain('error RENDEZVOUS: several nodes need one shared token');
    const loop = start(['launch', '--nnodes', '2', '--master', '198.18.0.1:29599', '--', 'comm-test'], TOKEN);
    expect((await loop.exit).code).toBe(1);
    expect(loop.stderr()).toContain('fix: pass --bind ADDR');
  });
});
