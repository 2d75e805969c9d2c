import { randomBytes } from 'node:crypto';
import { isParallelError, ParallelError } from '../errors.js';
import { DataPlane, type PeerAddress } from './data-plane.js';
import { DEFAULT_CHUNK_BYTES, ProcessGroup } from './process-group.js';
import { RankError } from './rank-error.js';
import { StoreClient } from './store-client.js';
import { hostPort, StoreServer } from './store-server.js';
import { DEFAULT_BIND, DEFAULT_TIMEOUT_MS, type WorldOptions, worldFromEnv } from './world-options.js';

/** Store keys of the rendezvous. */
const KEY = {
  size: 'world/size',
  id: 'world/id',
  hash: 'world/hash',
  closed: 'world/closed',
  join: (r: number) => `join/${r}`,
  addr: (r: number) => `addr/${r}`,
  ready: (r: number) => `ready/${r}`,
};

/** What a rank publishes under addr/R: where to reach it, or why it was refused (so all ranks stop). */
type Published = PeerAddress | { readonly refused: string };

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * Joins a world of processes (torch's init_process_group with a TCPStore): rank 0 serves the store at
 * the master address; every rank registers once, checks the world's size and strategy hash, publishes its
 * data server, connects to every peer and waits at a barrier. A rank that joins twice or after the world
 * started, or brings another size or strategy, is refused with RENDEZVOUS; a rank that never comes makes
 * the others fail with TIMEOUT naming it.
 */
export async function initProcessGroup(options: WorldOptions = worldFromEnv()): Promise<ProcessGroup> {
  const { rank, size, token } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const bindHost = options.bindHost ?? DEFAULT_BIND;
  const advertiseHost = options.advertiseHost ?? bindHost;
  if (WILDCARDS.has(advertiseHost)) {
    throw new ParallelError(
      'INVALID_ARGUMENT',
      `rank ${rank} binds ${bindHost} but says no address to reach it at`,
      {
        fix: 'pass --advertise ADDR (WEBGPU_PARALLEL_ADVERTISE): the address the other hosts reach this one at',
      },
    );
  }
  const master = hostPort(options.masterHost, options.masterPort);
  const where = `rank ${rank} of ${size}, store ${master}`;
  const storeServer =
    rank === 0
      ? await StoreServer.start({ host: bindHost, port: options.masterPort, token, tls: options.tls })
      : null;
  if (storeServer) {
    storeServer.store.set(KEY.size, String(size));
    storeServer.store.set(KEY.id, randomBytes(16).toString('hex'));
    storeServer.store.set(KEY.hash, options.configHash ?? '');
  }
  const store = new StoreClient({ target: master, token, timeoutMs, tls: options.tls, rank });
  let plane: DataPlane | null = null;
  try {
    await store.connect();
    const [closed] = await store.check([KEY.closed]);
    if (closed) {
      throw new RankError(
        'RENDEZVOUS',
        rank,
        `rank ${rank} joined late: the world of ${size} already started`,
        {
          where,
          fix: 'a running world takes no new ranks: start the whole world again',
        },
      );
    }
    if ((await store.add(KEY.join(rank))) > 1) {
      throw new RankError(
        'RENDEZVOUS',
        rank,
        `rank ${rank} joined twice: another process already holds rank ${rank}`,
        {
          where,
          fix: 'give every process its own RANK (the launcher does: check --nprocs, --nnodes and --node-rank)',
        },
      );
    }
    const refusal = await checkWorld(store, options, where);
    if (refusal) {
      await store.set(KEY.addr(rank), JSON.stringify({ refused: refusal.message } satisfies Published));
      throw refusal;
    }
    const worldId = await store.get(KEY.id);
    plane = await DataPlane.listen({
      rank,
      size,
      token,
      worldId,
      host: bindHost,
      timeoutMs,
      tls: options.tls,
    });
    await store.set(
      KEY.addr(rank),
      JSON.stringify({ host: advertiseHost, port: plane.port } satisfies Published),
    );
    const peers = await gatherAddresses(store, rank, size, timeoutMs, where);
    await plane.connect(peers);
    await store.set(KEY.ready(rank), '1');
    await waitForRanks(store, rank, size, KEY.ready, timeoutMs, where, 'reach the barrier');
    if (rank === 0) await store.set(KEY.closed, '1');
    return new ProcessGroup({
      rank,
      size,
      timeoutMs,
      chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      plane,
      store,
      storeServer,
      localRank: options.localRank ?? rank,
      localSize: options.localSize ?? size,
      bindHost,
      advertiseHost,
    });
  } catch (error) {
    await plane?.close(false).catch(() => undefined);
    store.close();
    // Rank 0 keeps the store up a moment so that the others read why the world failed, not a lost store.
    if (storeServer) await new Promise((r) => setTimeout(r, isParallelError(error, 'TIMEOUT') ? 0 : 300));
    await storeServer?.close();
    throw error;
  }
}

/** The world's size and strategy hash, as rank 0 set them, against this rank's; the refusal or null. */
async function checkWorld(
  store: StoreClient,
  options: WorldOptions,
  where: string,
): Promise<RankError | null> {
  const { rank, size } = options;
  const worldSize = Number(await store.get(KEY.size));
  if (worldSize !== size) {
    return new RankError(
      'RENDEZVOUS',
      rank,
      `rank ${rank} was started for a world of ${size}, the store's world has ${worldSize}`,
      {
        where,
        fix: 'start every rank with the same WORLD_SIZE (--nprocs x --nnodes)',
      },
    );
  }
  const hash = await store.get(KEY.hash);
  const mine = options.configHash ?? '';
  if (hash !== mine) {
    return new RankError(
      'RENDEZVOUS',
      rank,
      `rank ${rank} runs another strategy file than rank 0 (hash ${short(mine)}, rank 0 has ${short(hash)})`,
      { where, fix: 'give every node the same strategy file' },
    );
  }
  return null;
}

const short = (hash: string) => (hash ? hash.slice(0, 12) : 'none');

async function gatherAddresses(
  store: StoreClient,
  rank: number,
  size: number,
  timeoutMs: number,
  where: string,
): Promise<PeerAddress[]> {
  await waitForRanks(store, rank, size, KEY.addr, timeoutMs, where, 'join');
  const published = await Promise.all(
    Array.from({ length: size }, async (_, r) => JSON.parse(await store.get(KEY.addr(r))) as Published),
  );
  return published.map((p, r) => {
    if ('refused' in p) {
      throw new RankError('RENDEZVOUS', r, `the world cannot start: ${p.refused}`, {
        where,
        fix: 'start every rank with the same world size and strategy file',
      });
    }
    return p;
  });
}

/** Waits until every rank set its `key(r)`; TIMEOUT naming the ranks that did not. */
async function waitForRanks(
  store: StoreClient,
  rank: number,
  size: number,
  key: (r: number) => string,
  timeoutMs: number,
  where: string,
  what: string,
): Promise<void> {
  const keys = Array.from({ length: size }, (_, r) => key(r));
  try {
    await store.wait(keys, timeoutMs);
  } catch (error) {
    if (!isParallelError(error, 'TIMEOUT')) throw error;
    const present = await store.check(keys).catch(() => keys.map(() => false));
    const missing = keys.flatMap((_, r) => (present[r] ? [] : [r]));
    throw new RankError(
      'TIMEOUT',
      missing[0] ?? rank,
      `rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not ${what} within ${timeoutMs} ms`,
      {
        where,
        fix: 'start every rank (each node: its launcher with --node-rank), or raise --timeout',
        cause: error,
      },
    );
  }
}
