import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { grpcVsSocket } from './grpc-vs-socket.js';
import { NetnsLab } from './netns.js';
import type { BenchSink } from './record.js';

/**
 * Collectives across rank processes over gRPC (src/distributed): AllReduce and AllGather bus bandwidth at
 * 1 MiB and 16 MiB over 2 and 3 ranks, on loopback and across network namespaces limited to 1 Gbit/s each
 * way, each beside plain TCP between the same endpoints in the ring's pattern, measured in the same run
 * (comm-test --raw-socket). On loopback, send_recv (a ring shift over the gRPC streams, no reduction) is
 * set beside the same raw figure: the transport's own cost.
 */
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;
const TOKEN = 'b'.repeat(64);

interface Raw {
  op: string;
  bytes: number;
  ranks: number;
  median_ms: number;
  busbw_gbps: number;
  wrong: number;
}

/** A child's whole stdout and stderr, and its exit code, once it exits. */
function drain(child: ChildProcess): Promise<{ out: string; err: string; code: number | null }> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ out, err, code })));
}

async function collect(
  child: ChildProcess,
): Promise<{ records: Raw[]; code: number | null; stderr: string }> {
  const { out, err, code } = await drain(child);
  return {
    code,
    stderr: err,
    records: out
      .split('\n')
      .filter((l) => l.startsWith('[rank 0] {'))
      .map((l) => JSON.parse(l.slice(9)) as Raw),
  };
}

function commArgs(ops: string, sizes: readonly number[], iters: number): string[] {
  return [
    'comm-test',
    '--json',
    '--raw-socket',
    '--ops',
    ops,
    '--sizes',
    sizes.join(','),
    '--iters',
    String(iters),
  ];
}

function emit(sink: BenchSink, where: string, records: readonly Raw[]): void {
  for (const r of records) {
    if (r.op === 'raw_socket') continue;
    const raw = records.find((x) => x.op === 'raw_socket' && x.bytes === r.bytes);
    sink({
      suite: 'distributed',
      name: `${where}/${r.op}/${r.ranks}ranks/${r.bytes / MiB}MiB`,
      backend: 'grpc',
      where,
      ranks: r.ranks,
      bytes: r.bytes,
      median_ms: r.median_ms,
      busbw_gbps: r.busbw_gbps,
      raw_socket_gbps: raw?.busbw_gbps ?? null,
      of_raw: raw ? r.busbw_gbps / raw.busbw_gbps : null,
      wrong: r.wrong,
    });
  }
}

interface RunReport {
  checks: { passed: boolean; maxAbsError: number }[];
  pipelined: { wallMs: number };
  repeatWallMs: number[];
  ranks?: { clockResidualMs: number };
}

/** One `run` of a strategy file, in one process or as `launch --nprocs N`; its JSON report. */
async function runReport(file: string, nprocs: number, env: NodeJS.ProcessEnv): Promise<RunReport> {
  const args = ['run', file, '--json', '--no-baseline', '--no-progress'];
  const argv = nprocs === 1 ? args : ['launch', '--nprocs', String(nprocs), '--no-prefix', '--', ...args];
  const child = spawn(process.execPath, [MAIN, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const { out, err, code } = await drain(child);
  if (code !== 0) throw new Error(`run ${file} over ${nprocs} process(es) failed:\n${err}`);
  return JSON.parse(out) as RunReport;
}

/**
 * The strategy runner across ranks: seed-fits over 3 rank processes (a device each, every communication
 * on the wire) against the same file in one process, both checked against the CPU reference.
 */
export async function runnerRows(sink: BenchSink, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const file = fileURLToPath(new URL('../../examples/seed-fits.json', import.meta.url));
  const one = await runReport(file, 1, env);
  const world = await runReport(file, 3, env);
  sink({
    suite: 'distributed',
    name: 'loopback/runner/seed-fits/3ranks',
    where: 'loopback',
    ranks: 3,
    wall_ms: world.pipelined.wallMs,
    wall_ms_runs: world.repeatWallMs,
    one_process_wall_ms: one.pipelined.wallMs,
    one_process_wall_ms_runs: one.repeatWallMs,
    of_one_process: one.pipelined.wallMs / world.pipelined.wallMs,
    clock_residual_ms: world.ranks?.clockResidualMs ?? null,
    max_abs_error: world.checks[0]!.maxAbsError,
    passed: world.checks.every((c) => c.passed) && one.checks.every((c) => c.passed),
  });
}

export async function runDistributedBench(sink: BenchSink, options: { quick?: boolean } = {}): Promise<void> {
  const sizes = [MiB, 16 * MiB];
  const iters = options.quick ? 3 : 5;
  const env = { ...process.env, WEBGPU_PARALLEL_TOKEN: TOKEN };
  const transport = await grpcVsSocket(256 * MiB);
  sink({
    suite: 'distributed',
    name: 'loopback/transport/one-way/256MiB',
    where: 'loopback',
    grpc_gbps: transport.grpc / 1e9,
    raw_socket_gbps: transport.net / 1e9,
    of_raw: transport.grpc / transport.net,
  });
  for (const n of [2, 3]) {
    const child = spawn(
      process.execPath,
      [
        MAIN,
        'launch',
        '--nprocs',
        String(n),
        '--',
        ...commArgs('all_reduce,all_gather,send_recv', sizes, iters),
      ],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const run = await collect(child);
    if (run.code !== 0) throw new Error(`distributed bench on loopback, ${n} ranks, failed:\n${run.stderr}`);
    emit(sink, 'loopback', run.records);
  }
  await runnerRows(sink, env);
  const unavailable = NetnsLab.unavailable();
  if (unavailable) {
    sink({ suite: 'distributed', name: 'netns-1gbit/skipped', where: 'netns-1gbit', note: unavailable });
    return;
  }
  for (const n of [2, 3]) {
    const lab = NetnsLab.create(n, { rateMbit: 1000, tag: `bench${n}` });
    try {
      const master = `${lab.hosts[0]!.address}:29500`;
      const nodes = lab.hosts.map((host, i) =>
        collect(
          lab.spawn(
            i,
            [
              process.execPath,
              MAIN,
              'launch',
              '--nnodes',
              String(n),
              '--node-rank',
              String(i),
              '--master',
              master,
              '--bind',
              host.address,
              '--',
              ...commArgs('all_reduce,all_gather', sizes, iters),
            ],
            env,
          ),
        ),
      );
      const runs = await Promise.all(nodes);
      const failed = runs.find((r) => r.code !== 0);
      if (failed) throw new Error(`distributed bench across ${n} namespaces failed:\n${failed.stderr}`);
      emit(sink, 'netns-1gbit', runs[0]!.records);
    } finally {
      lab.destroy();
    }
  }
}
