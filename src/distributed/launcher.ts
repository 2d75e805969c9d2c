import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { ParallelError } from '../errors.js';
import type { TlsFiles } from './credentials.js';
import { generateToken, TOKEN_ENV } from './token.js';
import { DEFAULT_BIND, DEFAULT_TIMEOUT_MS, WORLD_ENV } from './world-options.js';

export interface LaunchOptions {
  /** Ranks on this host (torchrun's --nproc-per-node). */
  readonly nprocs: number;
  readonly nnodes?: number;
  readonly nodeRank?: number;
  /** Rank 0's store address; on one node, loopback and a free port unless given. */
  readonly masterHost?: string;
  readonly masterPort?: number;
  /** What each rank runs: the program and its arguments. */
  readonly command: readonly string[];
  /** The world's shared secret; else WEBGPU_PARALLEL_TOKEN; else (one node only) a fresh random one. */
  readonly token?: string;
  readonly timeoutMs?: number;
  readonly bindHost?: string;
  readonly advertiseHost?: string;
  readonly tls?: TlsFiles;
  readonly configHash?: string;
  readonly chunkBytes?: number;
  /** Prefix every output line with `[rank R]` (default); off, ranks write straight to this terminal. */
  readonly prefix?: boolean;
  /** Lines of a rank's stderr to drop (native drivers' noise); none by default. */
  readonly dropLine?: (line: string) => boolean;
  /** Environment the ranks start from (default this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Aborting stops every rank: SIGTERM to its process group, SIGKILL after `graceMs`. */
  readonly signal?: AbortSignal;
  readonly graceMs?: number;
  readonly onSpawn?: (rank: number, pid: number) => void;
  readonly log?: (line: string) => void;
}

export interface RankExit {
  readonly rank: number;
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LaunchResult {
  /** 0 when every rank exited 0; 130 when interrupted; else the first failing rank's status. */
  readonly exitCode: number;
  readonly ranks: readonly RankExit[];
  readonly interrupted: boolean;
}

const LOOPBACK = /^(127\.|localhost$|::1$|\[::1\]$)/;

/** A free TCP port on `host`, for rank 0's store when the user named none (as torchrun picks one). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function checkOptions(o: LaunchOptions): { nnodes: number; nodeRank: number } {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const bad = (message: string, fix: string) =>
    new ParallelError('INVALID_ARGUMENT', message, { where: 'launch', fix });
  if (!Number.isSafeInteger(o.nprocs) || o.nprocs < 1)
    throw bad(`--nprocs ${o.nprocs} is not a positive integer`, 'pass --nprocs N');
  if (!Number.isSafeInteger(nnodes) || nnodes < 1)
    throw bad(`--nnodes ${nnodes} is not a positive integer`, 'pass --nnodes M');
  if (!Number.isSafeInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) {
    throw bad(
      `--node-rank ${nodeRank} is not in 0..${nnodes - 1}`,
      'number the nodes 0..M-1, node 0 hosting rank 0',
    );
  }
  if (o.command.length === 0)
    throw bad('no command to run', 'put the command after --: launch --nprocs 2 -- comm-test');
  if (nnodes > 1) {
    if (!o.masterHost || !o.masterPort) {
      throw bad(
        'several nodes need --master HOST:PORT',
        "give every node the same --master: node 0's address and a port",
      );
    }
    const bind = o.bindHost ?? DEFAULT_BIND;
    if (LOOPBACK.test(bind) && !LOOPBACK.test(o.masterHost)) {
      throw bad(
        `ranks would listen on ${bind} only, which other hosts cannot reach`,
        "pass --bind ADDR: this host's address on the network the nodes share",
      );
    }
  }
  return { nnodes, nodeRank };
}

/**
 * Starts this node's ranks (torchrun's launcher): each rank a process of its own process group, with RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT and the world's token in its environment. A rank that fails is
 * left to the others to notice (they fail with RANK_LOST or TIMEOUT naming it, which is what a user needs
 * to read); any still running after their timeout and a margin are stopped. Aborting stops them all.
 */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const { nnodes, nodeRank } = checkOptions(options);
  const env = options.env ?? process.env;
  const bindHost = options.bindHost ?? DEFAULT_BIND;
  const masterHost = options.masterHost ?? (nnodes === 1 ? bindHost : DEFAULT_BIND);
  const masterPort = options.masterPort || (await freePort(bindHost));
  const token = options.token ?? env[TOKEN_ENV] ?? (nnodes === 1 ? generateToken() : undefined);
  if (!token) {
    throw new ParallelError('RENDEZVOUS', 'several nodes need one shared token', {
      where: TOKEN_ENV,
      fix: `set ${TOKEN_ENV} to the same secret on every node (e.g. openssl rand -hex 32)`,
    });
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const graceMs = options.graceMs ?? 5000;
  const size = nnodes * options.nprocs;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const children: { rank: number; child: ChildProcess; exit: Promise<RankExit> }[] = [];
  let interrupted = false;
  let stopping: Promise<void> | null = null;

  const stopAll = (why: string): Promise<void> => {
    stopping ??= (async () => {
      const running = children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
      if (running.length > 0) log(`[launch] stopping ranks ${running.map((c) => c.rank).join(', ')}: ${why}`);
      for (const c of running) signalGroup(c.child, 'SIGTERM');
      const killer = setTimeout(() => {
        for (const c of running) signalGroup(c.child, 'SIGKILL');
      }, graceMs);
      await Promise.all(running.map((c) => c.exit));
      clearTimeout(killer);
    })();
    return stopping;
  };
  const onAbort = () => {
    interrupted = true;
    void stopAll('interrupted');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  for (let local = 0; local < options.nprocs; local++) {
    const rank = nodeRank * options.nprocs + local;
    const rankEnv: NodeJS.ProcessEnv = {
      ...env,
      [WORLD_ENV.rank]: String(rank),
      [WORLD_ENV.size]: String(size),
      [WORLD_ENV.localRank]: String(local),
      [WORLD_ENV.localSize]: String(options.nprocs),
      [WORLD_ENV.nodeRank]: String(nodeRank),
      [WORLD_ENV.masterHost]: masterHost,
      [WORLD_ENV.masterPort]: String(masterPort),
      [WORLD_ENV.token]: token,
      [WORLD_ENV.timeoutMs]: String(timeoutMs),
      [WORLD_ENV.bindHost]: bindHost,
      ...(options.advertiseHost ? { [WORLD_ENV.advertiseHost]: options.advertiseHost } : {}),
      ...(options.configHash ? { [WORLD_ENV.configHash]: options.configHash } : {}),
      ...(options.chunkBytes ? { [WORLD_ENV.chunkBytes]: String(options.chunkBytes) } : {}),
      ...(options.tls
        ? {
            [WORLD_ENV.tlsCa]: options.tls.ca,
            [WORLD_ENV.tlsCert]: options.tls.cert,
            [WORLD_ENV.tlsKey]: options.tls.key,
          }
        : {}),
    };
    const prefix = options.prefix ?? true;
    // Its own process group, so that stopping a rank also stops what it started, and a terminal's Ctrl-C
    // reaches the launcher alone, which then stops the ranks in order.
    const child = spawn(options.command[0]!, options.command.slice(1), {
      env: rankEnv,
      detached: true,
      stdio: ['ignore', prefix ? 'pipe' : 'inherit', prefix || options.dropLine ? 'pipe' : 'inherit'],
    });
    if (child.stdout) pipeLines(child.stdout, process.stdout, `[rank ${rank}] `);
    if (child.stderr)
      pipeLines(child.stderr, process.stderr, prefix ? `[rank ${rank}] ` : '', options.dropLine);
    const exit = new Promise<RankExit>((resolve) => {
      child.once('error', (error) => {
        log(`[launch] rank ${rank} could not start ${options.command[0]}: ${error.message}`);
        resolve({ rank, pid: child.pid ?? -1, code: 127, signal: null });
      });
      child.once('exit', (code, signal) => resolve({ rank, pid: child.pid ?? -1, code, signal }));
    });
    children.push({ rank, child, exit });
    if (child.pid) {
      log(`[launch] rank ${rank} of ${size}: pid ${child.pid}`);
      options.onSpawn?.(rank, child.pid);
    }
  }

  let backstop: NodeJS.Timeout | undefined;
  const exits = await Promise.all(
    children.map(async (c) => {
      const result = await c.exit;
      if ((result.code !== 0 || result.signal) && !interrupted) {
        log(
          `[launch] rank ${result.rank} ${result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`}`,
        );
        // The others should notice within their timeout; a margin later, stop whatever still runs.
        const after = timeoutMs + Math.max(2000, Math.min(10_000, timeoutMs));
        backstop ??= setTimeout(() => void stopAll(`rank ${result.rank} failed ${after} ms ago`), after);
      }
      return result;
    }),
  );
  clearTimeout(backstop);
  options.signal?.removeEventListener('abort', onAbort);
  await stopping;
  const failed = exits.find((e) => e.code !== 0 || e.signal);
  const exitCode = interrupted ? 130 : failed ? (failed.code ?? 128 + signalNumber(failed.signal)) || 1 : 0;
  return { exitCode, ranks: exits, interrupted };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : signal === 'SIGINT' ? 2 : 1;
}

function pipeLines(
  from: NodeJS.ReadableStream,
  to: NodeJS.WritableStream,
  prefix: string,
  drop?: (line: string) => boolean,
): void {
  let dropping = false;
  createInterface({ input: from, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
    // A dropped native message may continue on blank lines; drop those with it (as bin/ does).
    const noise = drop !== undefined && (drop(line) || (dropping && line.trim() === ''));
    dropping = noise;
    if (!noise) to.write(`${prefix}${line}\n`);
  });
}
