import { ParallelError } from '../errors.js';
import type { TlsFiles } from './credentials.js';
import { TOKEN_ENV } from './token.js';

/** Everything a rank needs to join its world; `worldFromEnv` reads it from what the launcher passes. */
export interface WorldOptions {
  readonly rank: number;
  readonly size: number;
  /** Where rank 0 serves the rendezvous store (rank 0 listens there, on its bind address). */
  readonly masterHost: string;
  readonly masterPort: number;
  readonly token: string;
  /** How long any wait for a peer or the store may last before TIMEOUT (default 30 s). */
  readonly timeoutMs?: number;
  /** The address this rank's servers listen on; loopback unless asked for another. */
  readonly bindHost?: string;
  /** The address peers reach this rank at; the bind address unless that is a wildcard. */
  readonly advertiseHost?: string;
  readonly tls?: TlsFiles;
  /** A hash of what this rank runs (its strategy file): a rank bringing another is refused. */
  readonly configHash?: string;
  /** Chunk size of the pipelined collectives (default 512 KiB). */
  readonly chunkBytes?: number;
  /** This rank's place on its host, for picking its devices (`LOCAL_RANK` of `LOCAL_WORLD_SIZE`). */
  readonly localRank?: number;
  readonly localSize?: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_BIND = '127.0.0.1';

/** The variables a launcher sets for each rank (torchrun's names where it has one). */
export const WORLD_ENV = {
  rank: 'RANK',
  size: 'WORLD_SIZE',
  localRank: 'LOCAL_RANK',
  localSize: 'LOCAL_WORLD_SIZE',
  nodeRank: 'NODE_RANK',
  masterHost: 'MASTER_ADDR',
  masterPort: 'MASTER_PORT',
  token: TOKEN_ENV,
  timeoutMs: 'WEBGPU_PARALLEL_TIMEOUT_MS',
  bindHost: 'WEBGPU_PARALLEL_BIND',
  advertiseHost: 'WEBGPU_PARALLEL_ADVERTISE',
  configHash: 'WEBGPU_PARALLEL_CONFIG_HASH',
  chunkBytes: 'WEBGPU_PARALLEL_CHUNK_BYTES',
  tlsCa: 'WEBGPU_PARALLEL_TLS_CA',
  tlsCert: 'WEBGPU_PARALLEL_TLS_CERT',
  tlsKey: 'WEBGPU_PARALLEL_TLS_KEY',
} as const;

const FIX = 'start ranks with `webgpu-parallel launch --nprocs N -- ...`, which sets these for each rank';

function integer(env: NodeJS.ProcessEnv, name: string, min: number, fallback?: number): number {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback !== undefined) return fallback;
    throw new ParallelError('INVALID_ARGUMENT', `${name} is not set`, { where: name, fix: FIX });
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ParallelError('INVALID_ARGUMENT', `${name}=${text} is not an integer >= ${min}`, {
      where: name,
      fix: FIX,
    });
  }
  return n;
}

/** Reads a rank's world from its environment; a missing or wrong variable is named with the fix. */
export function worldFromEnv(env: NodeJS.ProcessEnv = process.env): WorldOptions {
  const size = integer(env, WORLD_ENV.size, 1);
  const rank = integer(env, WORLD_ENV.rank, 0);
  if (rank >= size) {
    throw new ParallelError('INVALID_ARGUMENT', `RANK=${rank} is not below WORLD_SIZE=${size}`, {
      where: WORLD_ENV.rank,
      fix: FIX,
    });
  }
  const token = env[WORLD_ENV.token];
  if (!token) {
    throw new ParallelError('RENDEZVOUS', `no world token: ${WORLD_ENV.token} is not set`, {
      where: WORLD_ENV.token,
      fix: `${FIX} (it generates one), or set ${WORLD_ENV.token} to the same secret on every node`,
    });
  }
  const tlsFiles = [env[WORLD_ENV.tlsCa], env[WORLD_ENV.tlsCert], env[WORLD_ENV.tlsKey]];
  if (tlsFiles.some(Boolean) && !tlsFiles.every(Boolean)) {
    throw new ParallelError('INVALID_ARGUMENT', 'TLS needs a CA, a certificate and a key', {
      where: `${WORLD_ENV.tlsCa}, ${WORLD_ENV.tlsCert}, ${WORLD_ENV.tlsKey}`,
      fix: 'pass all three of --tls-ca, --tls-cert and --tls-key, or none',
    });
  }
  return {
    rank,
    size,
    masterHost: env[WORLD_ENV.masterHost] || DEFAULT_BIND,
    masterPort: integer(env, WORLD_ENV.masterPort, 1),
    token,
    timeoutMs: integer(env, WORLD_ENV.timeoutMs, 1, DEFAULT_TIMEOUT_MS),
    bindHost: env[WORLD_ENV.bindHost] || DEFAULT_BIND,
    advertiseHost: env[WORLD_ENV.advertiseHost] || undefined,
    tls: tlsFiles.every(Boolean) ? { ca: tlsFiles[0]!, cert: tlsFiles[1]!, key: tlsFiles[2]! } : undefined,
    configHash: env[WORLD_ENV.configHash] || undefined,
    chunkBytes: env[WORLD_ENV.chunkBytes] ? integer(env, WORLD_ENV.chunkBytes, 4) : undefined,
    localRank: integer(env, WORLD_ENV.localRank, 0, rank),
    localSize: integer(env, WORLD_ENV.localSize, 1, size),
  };
}

/** Whether this process was started as a rank (a launcher set its world). */
export function isRankProcess(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[WORLD_ENV.rank] !== undefined && env[WORLD_ENV.size] !== undefined;
}
