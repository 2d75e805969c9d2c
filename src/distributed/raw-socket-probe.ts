import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { ParallelError } from '../errors.js';
import type { ProcessGroup } from './process-group.js';
import { allGatherRanks, barrierRanks } from './ring.js';

const WRITE_BYTES = 1024 * 1024;

/**
 * Plain TCP throughput between the same endpoints the world's gRPC links use, in the ring's pattern: every
 * rank streams `bytes` to its right neighbour while it takes as many from its left, all at once. This is
 * the yardstick the distributed bench sets each collective's bus bandwidth beside (measured in the same
 * run, so the same rate limit and the same load). Bytes per second of the slowest rank.
 *
 * The listener takes one connection for the probe, whose first bytes must be the world's token.
 */
export async function rawSocketRing(pg: ProcessGroup, bytes: number, token: string): Promise<number> {
  if (pg.size === 1) return Number.POSITIVE_INFINITY;
  const round = pg.nextSeq();
  const right = (pg.rank + 1) % pg.size;
  const { server, port, received } = await listenOnce(pg.bindHost, bytes, token, pg.timeoutMs);
  try {
    await pg.store.set(`raw/${round}/${pg.rank}`, JSON.stringify({ host: pg.advertiseHost, port }));
    const peer = JSON.parse(await pg.store.get(`raw/${round}/${right}`)) as { host: string; port: number };
    const socket = await connect(peer.host, peer.port, pg.timeoutMs);
    try {
      socket.write(token);
      await barrierRanks(pg);
      const start = performance.now();
      await Promise.all([stream(socket, bytes), received()]);
      const seconds = (performance.now() - start) / 1000;
      const all = await allGatherRanks(pg, new Float32Array([seconds]));
      return bytes / Math.max(...all);
    } finally {
      socket.destroy();
    }
  } finally {
    server.close();
  }
}

function connect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port, noDelay: true, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.setTimeout(0);
      resolve(socket);
    });
    socket.once('timeout', () =>
      socket.destroy(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`)),
    );
    socket.once('error', (error) =>
      reject(new ParallelError('RANK_LOST', `raw socket probe: ${error.message}`, { cause: error })),
    );
  });
}

async function stream(socket: Socket, bytes: number): Promise<void> {
  const block = Buffer.alloc(Math.min(WRITE_BYTES, bytes));
  for (let sent = 0; sent < bytes; sent += block.length) {
    const piece = sent + block.length <= bytes ? block : block.subarray(0, bytes - sent);
    if (!socket.write(piece)) await new Promise((r) => socket.once('drain', r));
  }
}

async function listenOnce(
  host: string,
  bytes: number,
  token: string,
  timeoutMs: number,
): Promise<{ server: Server; port: number; received: () => Promise<void> }> {
  let done!: () => void;
  let failed!: (error: Error) => void;
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  finished.catch(() => undefined);
  const server = createServer((socket) => {
    let header = Buffer.alloc(0);
    let got = 0;
    socket.on('data', (data: Buffer) => {
      if (header.length < token.length) {
        const need = token.length - header.length;
        header = Buffer.concat([header, data.subarray(0, need)]);
        data = data.subarray(need);
        if (header.length === token.length && header.toString() !== token) {
          socket.destroy();
          return;
        }
      }
      got += data.length;
      if (got >= bytes) {
        done();
        socket.end();
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const received = () => {
    const timer = setTimeout(
      () => failed(new ParallelError('TIMEOUT', `raw socket probe: no data within ${timeoutMs} ms`)),
      timeoutMs,
    );
    return finished.finally(() => clearTimeout(timer));
  };
  return { server, port, received };
}
