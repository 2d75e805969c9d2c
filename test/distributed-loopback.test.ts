import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, root } from './support/cli.js';
import { TEST_BACKEND } from './support/devices.js';
import { alive, killAll, records, runCli } from './support/ranks.js';

// Real processes on loopback: the launcher starts ranks, they meet at rank 0's store, and every collective
// across them is checked in closed form. The wire tests run once (the webgpu pass); the hierarchical test
// runs on each pass's backend.
const WORKER = join(root, 'test/support/distributed-worker.mjs');
const wireOnly = TEST_BACKEND === 'gpujs';

beforeAll(() => ensureBuilt(), 120_000);
afterEach(() => killAll());

describe.skipIf(wireOnly)('collectives across ranks on loopback', () => {
  it.each([2, 3])('comm-test: every op over %i ranks, uneven byte counts, zero wrong', async (n) => {
    const ops = 'all_reduce,all_gather,reduce_scatter,broadcast,reduce,send_recv,all_to_all';
    const r = await runCli([
      'launch',
      '--nprocs',
      String(n),
      '--chunk',
      '64KiB',
      '--',
      'comm-test',
      '--json',
      '--ops',
      ops,
      '--sizes',
      '4100,300007',
      '--iters',
      '2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const got = records(r.stdout);
    expect(got).toHaveLength(14);
    for (const record of got) {
      expect(record.ranks).toBe(n);
      expect(record.wrong, `${record.op} ${record.bytes}`).toBe(0);
      expect(record.busbw_gbps).toBeGreaterThan(0);
    }
    // Every rank exited: the launcher waited for them all.
    for (const pid of r.pids.values()) expect(alive(pid)).toBe(false);
  });

  it('library collectives on uneven sizes, zero-length parts and roots other than 0 (3 ranks, small chunks)', async () => {
    const r = await runCli(['launch', '--nprocs', '3', '--chunk', '16KiB', '--', process.execPath, WORKER]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.includes('"checks"'));
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      const { checks, failures } = JSON.parse(line.replace(/^\[rank \d+\] /, '')) as {
        checks: number;
        failures: string[];
      };
      expect(failures).toEqual([]);
      expect(checks).toBeGreaterThan(8);
    }
  });

  it('the launcher hands a token set in WEBGPU_PARALLEL_TOKEN to its ranks (a node of a multi-host world)', async () => {
    const r = await runCli(
      [
        'launch',
        '--nprocs',
        '2',
        '--',
        'comm-test',
        '--json',
        '--ops',
        'all_reduce',
        '--sizes',
        '1KiB',
        '--iters',
        '1',
      ],
      {
        ...process.env,
        WEBGPU_PARALLEL_TOKEN: 'c'.repeat(64),
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(records(r.stdout)[0]?.wrong).toBe(0);
  });
});

/** A CA and one certificate for 127.0.0.1 signed by it (server and client use), with openssl. */
function makeCertificates(): { ca: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wgp-tls-'));
  const at = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    at('ca.key'),
    '-out',
    at('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=wgp test CA',
  );
  ssl('req', ...ec, '-keyout', at('host.key'), '-out', at('host.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(at('ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  ssl(
    'x509',
    '-req',
    '-in',
    at('host.csr'),
    '-CA',
    at('ca.pem'),
    '-CAkey',
    at('ca.key'),
    '-CAcreateserial',
    '-out',
    at('host.pem'),
    '-days',
    '1',
    '-extfile',
    at('ext'),
  );
  return { ca: at('ca.pem'), cert: at('host.pem'), key: at('host.key') };
}

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(wireOnly || !hasOpenssl)('TLS', () => {
  it('a world over gRPC TLS with client certificates: store and data streams, zero wrong', async () => {
    const tls = makeCertificates();
    const r = await runCli([
      'launch',
      '--nprocs',
      '2',
      '--tls-ca',
      tls.ca,
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--',
      'comm-test',
      '--json',
      '--ops',
      'all_reduce,all_gather',
      '--sizes',
      '100003',
      '--iters',
      '1',
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const record of records(r.stdout)) expect(record.wrong).toBe(0);
  });
});

describe('hierarchical collectives: ranks of several devices each', () => {
  it(`2 ranks x 2 ${TEST_BACKEND} devices: AllReduce of partials and AllGather of shards, every device checked`, async () => {
    const r = await runCli([
      'launch',
      '--nprocs',
      '2',
      '--',
      'comm-test',
      '--json',
      '--ops',
      'all_reduce',
      '--sizes',
      '4KiB',
      '--iters',
      '1',
      '--devices',
      '2',
      '--backend',
      TEST_BACKEND,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const got = records(r.stdout);
    expect(got.map((x) => x.op)).toEqual(['all_reduce', 'all_reduce_devices', 'all_gather_devices']);
    for (const record of got) expect(record.wrong).toBe(0);
  });
});
