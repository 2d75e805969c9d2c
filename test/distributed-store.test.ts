import { describe, expect, it } from 'vitest';
import { KeyValueStore } from '../src/distributed/key-value-store.js';
import { StoreClient } from '../src/distributed/store-client.js';
import { StoreServer } from '../src/distributed/store-server.js';
import { isParallelError } from '../src/errors.js';

const TOKEN = 'a'.repeat(64);

async function withStore(
  body: (server: StoreServer, client: (token?: string) => StoreClient) => Promise<void>,
) {
  const server = await StoreServer.start({ host: '127.0.0.1', port: 0, token: TOKEN });
  const clients: StoreClient[] = [];
  const client = (token = TOKEN) => {
    const c = new StoreClient({ target: `127.0.0.1:${server.port}`, token, timeoutMs: 2000 });
    clients.push(c);
    return c;
  };
  try {
    await body(server, client);
  } finally {
    for (const c of clients) c.close();
    await server.close();
  }
}

describe('rendezvous store (TCPStore semantics)', () => {
  it('set overwrites, add counts from zero, wait resolves once every key exists', async () => {
    const store = new KeyValueStore();
    expect(store.add('n', 1)).toBe(1);
    expect(store.add('n', 4)).toBe(5);
    store.set('k', 'v1');
    store.set('k', 'v2');
    expect(store.get('k')).toBe('v2');
    const waited = store.wait(['a', 'b'], 1000);
    store.set('a', '1');
    expect(store.waiting).toBe(1);
    store.set('b', '2');
    await waited;
    expect(store.waiting).toBe(0);
    expect(() => store.add('k', 1)).toThrow(/not a counter/);
  });

  it('serves get/add/wait/check/delete over gRPC; a blocking get returns when another client sets the key', async () => {
    await withStore(async (_server, client) => {
      const a = client();
      const b = client();
      await a.connect();
      const pending = a.get('late');
      await b.set('late', 'here');
      expect(await pending).toBe('here');
      expect(await Promise.all([a.add('c'), b.add('c'), a.add('c', 10)])).toEqual(
        expect.arrayContaining([1, 2, 12]),
      );
      expect(await b.check(['late', 'nope'])).toEqual([true, false]);
      expect(await a.delete('late')).toBe(true);
      expect(await a.check(['late'])).toEqual([false]);
    });
  });

  it('a wait that outlasts its timeout is TIMEOUT naming the missing key, and leaves no waiter behind', async () => {
    await withStore(async (server, client) => {
      const c = client();
      const error = await c.wait(['addr/2'], 300).catch((e: unknown) => e);
      expect(isParallelError(error, 'TIMEOUT')).toBe(true);
      expect(String((error as Error).message)).toContain('addr/2');
      expect(server.store.waiting).toBe(0);
    });
  });

  it('refuses a call without the world token (RENDEZVOUS) and stores nothing', async () => {
    await withStore(async (server, client) => {
      const error = await client('b'.repeat(64))
        .set('x', '1')
        .catch((e: unknown) => e);
      expect(isParallelError(error, 'RENDEZVOUS')).toBe(true);
      expect(String((error as Error).message)).toContain("refused this rank's token");
      expect(server.store.get('x')).toBeUndefined();
    });
  });

  it('a second store on the same port is refused with RENDEZVOUS naming the address', async () => {
    await withStore(async (server) => {
      const error = await StoreServer.start({ host: '127.0.0.1', port: server.port, token: TOKEN }).catch(
        (e: unknown) => e,
      );
      expect(isParallelError(error, 'RENDEZVOUS')).toBe(true);
      expect(String((error as Error).message)).toContain(`127.0.0.1:${server.port}`);
    });
  });

  it('a client whose store never answers fails with TIMEOUT within its timeout', async () => {
    const c = new StoreClient({ target: '127.0.0.1:9', token: TOKEN, timeoutMs: 500 });
    const start = Date.now();
    const error = await c.connect().catch((e: unknown) => e);
    c.close();
    expect(isParallelError(error, 'TIMEOUT')).toBe(true);
    expect(Date.now() - start).toBeLessThan(3000);
  });
});
