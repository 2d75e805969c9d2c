import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab } from '../bench/netns.js';
import { ensureBuilt } from './support/cli.js';
import { TEST_BACKEND } from './support/devices.js';
import { alive, BIN, killAll, records, type Started, start } from './support/ranks.js';

// Hosts as network namespaces joined by veth pairs to a bridge, 1 Gbit/s each way (tbf), one launcher per
// host: the world meets across real interfaces, not loopback. Needs root and iproute2 (CI has both); a
// machine without them skips with the reason, except in CI, where that is a failure.
const reason = TEST_BACKEND === 'gpujs' ? 'runs once, in the webgpu pass' : NetnsLab.unavailable();
if (reason && process.env.CI && TEST_BACKEND !== 'gpujs')
  throw new Error(`CI needs network namespaces: ${reason}`);
const TOKEN = { ...process.env, WEBGPU_PARALLEL_TOKEN: 'f'.repeat(64) };

function world(lab: NetnsLab, nprocs: number, command: readonly string[], timeout = '5s'): Started[] {
  const master = `${lab.hosts[0]!.address}:29500`;
  return lab.hosts.map((host, i) =>
    start(
      [],
      TOKEN,
      lab.spawn(
        i,
        [
          process.execPath,
          BIN,
          'launch',
          '--nnodes',
          String(lab.hosts.length),
          '--node-rank',
          String(i),
          '--nprocs',
          String(nprocs),
          '--master',
          master,
          '--bind',
          host.address,
          '--timeout',
          timeout,
          '--',
          ...command,
        ],
        TOKEN,
      ),
    ),
  );
}

describe.skipIf(reason !== null)(`across network namespaces${reason ? ` (skipped: ${reason})` : ''}`, () => {
  const labs: NetnsLab[] = [];
  beforeAll(() => ensureBuilt(), 120_000);
  afterAll(() => {
    killAll();
    for (const lab of labs) lab.destroy();
    for (const lab of labs) expect(lab.remaining()).toEqual([]);
  });

  it('2 hosts x 2 ranks at 1 Gbit/s: every collective, zero wrong', async () => {
    const lab = NetnsLab.create(2, { rateMbit: 1000, tag: 'two' });
    labs.push(lab);
    const ops = 'all_reduce,all_gather,reduce_scatter,broadcast,reduce,send_recv,all_to_all';
    const nodes = world(lab, 2, ['comm-test', '--json', '--ops', ops, '--sizes', '200003', '--iters', '1']);
    const exits = await Promise.all(nodes.map((n) => n.exit));
    for (const [i, e] of exits.entries()) expect(e.code, nodes[i]!.stderr()).toBe(0);
    const got = records(nodes[0]!.stdout());
    expect(got).toHaveLength(7);
    for (const r of got) expect([r.ranks, r.wrong]).toEqual([4, 0]);
    lab.destroy();
    expect(lab.remaining()).toEqual([]);
  });

  it('3 hosts, one rank each: AllReduce checked; a rank killed mid-run makes the other hosts fail naming it', async () => {
    const lab = NetnsLab.create(3, { rateMbit: 1000, tag: 'three' });
    labs.push(lab);
    const ok = world(lab, 1, [
      'comm-test',
      '--json',
      '--ops',
      'all_reduce,all_gather',
      '--sizes',
      '1MiB',
      '--iters',
      '2',
    ]);
    for (const n of ok) expect((await n.exit).code, n.stderr()).toBe(0);
    for (const r of records(ok[0]!.stdout())) expect([r.ranks, r.wrong]).toEqual([3, 0]);

    const loop = [
      'comm-test',
      '--ops',
      'all_reduce',
      '--sizes',
      '256KiB',
      '--iters',
      '1000000',
      '--print-iterations',
    ];
    const nodes = world(lab, 1, loop);
    await nodes[2]!.waitFor(/\[rank 2\] iteration all_reduce \d+ 3/);
    const pid = nodes[2]!.pids.get(2)!;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const exits = await Promise.all(nodes.map((n) => n.exit));
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    for (const e of exits) expect(e.code).not.toBe(0);
    for (const r of [0, 1])
      expect(nodes[r]!.stderr()).toMatch(new RegExp(`\\[rank ${r}\\] error RANK_LOST: rank 2 is gone`));
    for (const n of nodes) for (const p of n.pids.values()) expect(alive(p)).toBe(false);
    lab.destroy();
    expect(lab.remaining()).toEqual([]);
  });
});
