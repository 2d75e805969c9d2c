import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';
import { type Command, InvalidArgumentError } from 'commander';
import { COMM_OPS, type CommOp, type CommRecord, runCommTest } from '../distributed/comm-test.js';
import { checkHierarchical } from '../distributed/hierarchical-check.js';
import { launch } from '../distributed/launcher.js';
import { initProcessGroup } from '../distributed/rendezvous.js';
import { isRankProcess, worldFromEnv } from '../distributed/world-options.js';
import { ParallelError } from '../errors.js';
import type { BackendChoice } from '../runtime/device-group.js';
import { DeviceGroup } from '../runtime/device-group.js';
import { isNativeNoise } from '../runtime/webgpu/native-noise.js';
import { parseBytes } from './bytes.js';
import { positiveInt } from './options.js';

interface LaunchFlags {
  nprocs: number;
  nnodes: number;
  nodeRank: number;
  master?: { host: string; port: number };
  bind: string;
  advertise?: string;
  timeout: number;
  chunk?: number;
  strategy?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  prefix: boolean;
}

interface CommFlags {
  ops: CommOp[];
  sizes: number[];
  iters: number;
  warmup: number;
  rawSocket?: boolean;
  json?: boolean;
  devices?: number;
  backend: BackendChoice;
  printIterations?: boolean;
}

/** "30s", "500ms", "2m", or plain seconds -> milliseconds. */
export function parseDuration(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  const ms = match
    ? Number(match[1]) * (match[2] === 'ms' ? 1 : match[2] === 'm' ? 60_000 : 1000)
    : Number.NaN;
  if (!Number.isFinite(ms) || ms <= 0)
    throw new InvalidArgumentError(`'${value}' is not a duration (e.g. 30s, 500ms, 2m)`);
  return Math.round(ms);
}

function parseHostPort(value: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(value.trim());
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isSafeInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`'${value}' is not HOST:PORT (e.g. 10.0.0.1:29500)`);
  }
  return { host: match[1]!, port };
}

function parseOps(value: string): CommOp[] {
  const ops = value.split(',').map((s) => s.trim());
  const bad = ops.filter((op) => !(COMM_OPS as readonly string[]).includes(op));
  if (bad.length > 0)
    throw new InvalidArgumentError(`unknown ${bad.join(', ')}; choose from ${COMM_OPS.join(', ')}`);
  return ops as CommOp[];
}

/** The hash a world checks every rank against: the strategy file's bytes (explicit, or a `run FILE`'s). */
function configHash(flags: LaunchFlags, command: readonly string[]): string | undefined {
  const file =
    flags.strategy ?? (command[0] === 'run' && command[1] && existsSync(command[1]) ? command[1] : undefined);
  if (!file) return undefined;
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch (error) {
    throw new ParallelError('IO', `cannot read the strategy file ${file}`, { where: file, cause: error });
  }
}

function formatRecords(records: readonly CommRecord[]): string {
  const head =
    '| op | bytes | ranks | median ms | algbw GB/s | busbw GB/s | wrong |\n|---|---:|---:|---:|---:|---:|---:|\n';
  return `${head}${records
    .map(
      (r) =>
        `| ${r.op} | ${r.bytes} | ${r.ranks} | ${r.median_ms.toFixed(3)} | ${r.algbw_gbps.toFixed(3)} | ${r.busbw_gbps.toFixed(3)} | ${r.wrong} |`,
    )
    .join('\n')}\n`;
}

export function addLaunchCommands(program: Command): void {
  program
    .command('launch')
    .description('start N ranks on this host (and join ranks on other hosts): launch --nprocs 2 -- comm-test')
    .argument('<command...>', 'after --: a command of this CLI (comm-test, run FILE, ...) or any program')
    .option('--nprocs <n>', 'ranks on this host', positiveInt, 1)
    .option('--nnodes <m>', 'hosts in the world', positiveInt, 1)
    .option(
      '--node-rank <r>',
      "this host's number, 0..nnodes-1 (node 0 runs rank 0 and the store)",
      (v) => positiveInt(String(Number(v) + 1)) - 1,
      0,
    )
    .option('--master <host:port>', "rank 0's store (required with --nnodes > 1)", parseHostPort)
    .option('--bind <addr>', 'address the ranks listen on (default loopback)', '127.0.0.1')
    .option('--advertise <addr>', 'address the other hosts reach these ranks at (default: --bind)')
    .option(
      '--timeout <duration>',
      'how long a rank waits for a peer before failing (TIMEOUT)',
      parseDuration,
      30_000,
    )
    .option('--chunk <bytes>', 'chunk size of the pipelined collectives (default 512KiB)', parseBytes)
    .option(
      '--strategy <file>',
      'refuse ranks whose copy of this file differs (default: the file of `run FILE`)',
    )
    .option('--tls-ca <file>', 'TLS: CA that signed every rank (PEM)')
    .option('--tls-cert <file>', "TLS: this host's certificate (PEM)")
    .option('--tls-key <file>', "TLS: this host's private key (PEM)")
    .option('--no-prefix', 'do not prefix output lines with [rank R]')
    .action(async (command: string[], flags: LaunchFlags) => {
      const verbose = Boolean(program.opts<{ verbose?: boolean }>().verbose);
      const ours = new Set(program.commands.map((c) => c.name()));
      const main = fileURLToPath(new URL('./main.js', import.meta.url));
      const argv = ours.has(command[0]!)
        ? [process.execPath, main, ...(verbose ? ['--verbose'] : []), ...command]
        : command;
      const tls = [flags.tlsCa, flags.tlsCert, flags.tlsKey];
      if (tls.some(Boolean) && !tls.every(Boolean)) {
        throw new ParallelError('INVALID_ARGUMENT', 'TLS needs --tls-ca, --tls-cert and --tls-key together', {
          where: 'launch',
        });
      }
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        const result = await launch({
          nprocs: flags.nprocs,
          nnodes: flags.nnodes,
          nodeRank: flags.nodeRank,
          masterHost: flags.master?.host,
          masterPort: flags.master?.port,
          command: argv,
          timeoutMs: flags.timeout,
          bindHost: flags.bind,
          advertiseHost: flags.advertise,
          chunkBytes: flags.chunk,
          configHash: configHash(flags, command),
          tls: tls.every(Boolean)
            ? { ca: flags.tlsCa!, cert: flags.tlsCert!, key: flags.tlsKey! }
            : undefined,
          prefix: flags.prefix,
          dropLine: verbose ? undefined : isNativeNoise,
          signal: controller.signal,
        });
        process.exitCode = result.exitCode;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  program
    .command('comm-test')
    .description('as a rank of `launch`: time and check collectives across ranks (nccl-tests style)')
    .option('--ops <list>', `comma-separated: ${COMM_OPS.join(',')}`, parseOps, ['all_reduce', 'all_gather'])
    .option('--sizes <list>', 'comma-separated buffer sizes', (v: string) => v.split(',').map(parseBytes), [
      1 << 20,
    ])
    .option('--iters <n>', 'timed iterations per size', positiveInt, 5)
    .option('--warmup <n>', 'untimed iterations first', (v) => positiveInt(String(Number(v) + 1)) - 1, 1)
    .option('--raw-socket', 'also time plain TCP between the same ranks (the yardstick)')
    .option('--devices <n>', 'also check the collectives across ranks of N local devices each', positiveInt)
    .option('--backend <name>', 'backend of --devices: webgpu, gpujs, cpu or auto', 'cpu')
    .option('--print-iterations', 'print a line on every rank after each timed iteration')
    .option('--json', 'one JSON record a line')
    .action(async (flags: CommFlags) => {
      if (!isRankProcess()) {
        throw new ParallelError('INVALID_ARGUMENT', 'comm-test runs as a rank of a world', {
          fix: 'start it with `webgpu-parallel launch --nprocs 2 -- comm-test`',
        });
      }
      // grpc-js logs its own line for a failed bind or a dropped peer; the typed error after it says more.
      setLogVerbosity(logVerbosity.NONE);
      const world = worldFromEnv();
      const pg = await initProcessGroup(world);
      const print = (line: string) => {
        if (pg.rank === 0) process.stdout.write(`${line}\n`);
      };
      // A backstop: a rank that failed must exit even if some handle outlived the close.
      const exitSoon = () => setTimeout(() => process.exit(process.exitCode ?? 1), 3000).unref();
      try {
        const records = await runCommTest(
          pg,
          {
            ops: flags.ops,
            sizes: flags.sizes,
            iters: flags.iters,
            warmup: flags.warmup,
            rawSocket: flags.rawSocket ? { token: world.token } : undefined,
            onIteration: flags.printIterations
              ? (op, bytes, i) => process.stdout.write(`iteration ${op} ${bytes} ${i}\n`)
              : undefined,
          },
          flags.json ? (r) => print(JSON.stringify(r)) : undefined,
        );
        if (flags.devices) {
          const group = await DeviceGroup.open({ count: flags.devices, backend: flags.backend });
          try {
            for (const r of await checkHierarchical(pg, group)) {
              if (r.wrong > 0) process.exitCode = 2;
              print(
                flags.json
                  ? JSON.stringify(r)
                  : `${r.op} over ${r.devices} devices x ${pg.size} ranks: ${r.wrong} wrong`,
              );
            }
          } finally {
            group.destroy();
          }
        }
        if (!flags.json) print(formatRecords(records));
        await pg.close();
        if (records.some((r) => r.wrong > 0)) process.exitCode = 2;
      } catch (error) {
        exitSoon();
        await pg.abort(
          error instanceof ParallelError ? error : new ParallelError('RANK_LOST', String(error)),
        );
        throw error;
      }
    });
}
