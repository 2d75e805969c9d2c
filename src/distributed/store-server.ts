import {
  type handleUnaryCall,
  Server,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { isParallelError, ParallelError } from '../errors.js';
import { serverCredentials, type TlsFiles } from './credentials.js';
import { STORE_SERVICE, type StoreReply, type StoreRequest, serverOptions } from './grpc-services.js';
import { KeyValueStore } from './key-value-store.js';
import { hasToken } from './token.js';

export interface StoreServerOptions {
  /** Address to listen on; loopback unless the user asks for another. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly token: string;
  readonly tls?: TlsFiles;
}

/** Formats host:port for gRPC, bracketing IPv6 literals. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Binds a grpc-js server; a refused bind is RENDEZVOUS naming the address (in use, not ours, ...). */
export function bindServer(
  server: Server,
  host: string,
  port: number,
  tls: TlsFiles | undefined,
  what: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(hostPort(host, port), serverCredentials(tls), (error, bound) => {
      if (error) {
        reject(
          new ParallelError(
            'RENDEZVOUS',
            `cannot serve ${what} at ${hostPort(host, port)}: ${error.message}`,
            {
              where: hostPort(host, port),
              fix:
                port === 0
                  ? 'bind an address of this host (--bind)'
                  : 'is another world (or this rank, twice) already serving there? pick another --master port',
              cause: error,
            },
          ),
        );
      } else resolve(bound);
    });
  });
}

/** Ends a server: new calls are refused at once, open ones get a moment to finish, then are cut. */
export function shutdownServer(server: Server, graceMs = 500): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Rank 0's rendezvous store over gRPC unary calls; every call must carry the world's token. */
export class StoreServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly store: KeyValueStore,
  ) {}

  static async start(options: StoreServerOptions): Promise<StoreServer> {
    const server = new Server(serverOptions());
    const store = new KeyValueStore();
    server.addService(STORE_SERVICE, storeHandlers(store, options.token));
    const port = await bindServer(server, options.host, options.port, options.tls, 'the rendezvous store');
    return new StoreServer(server, port, store);
  }

  close(): Promise<void> {
    return shutdownServer(this.server);
  }
}

type Handler = (request: StoreRequest, signal: AbortSignal) => StoreReply | Promise<StoreReply>;

function storeHandlers(store: KeyValueStore, token: string): UntypedServiceImplementation {
  const serve =
    (handler: Handler): handleUnaryCall<StoreRequest, StoreReply> =>
    (call: ServerUnaryCall<StoreRequest, StoreReply>, callback: sendUnaryData<StoreReply>) => {
      if (!hasToken(call.metadata, token)) {
        callback({ code: status.UNAUTHENTICATED, details: 'missing or wrong world token' });
        return;
      }
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      Promise.resolve()
        .then(() => handler(call.request, abort.signal))
        .then(
          (reply) => callback(null, reply),
          (error: unknown) =>
            callback({
              code: isParallelError(error, 'TIMEOUT') ? status.DEADLINE_EXCEEDED : status.INVALID_ARGUMENT,
              details: error instanceof Error ? error.message : String(error),
            }),
        );
    };
  const key = (r: StoreRequest) => {
    if (typeof r.key !== 'string') throw new ParallelError('INVALID_ARGUMENT', 'a store call needs a key');
    return r.key;
  };
  const wait = (r: StoreRequest) => Math.max(0, Math.min(r.timeoutMs ?? 30_000, 3_600_000));
  return {
    set: serve((r) => {
      store.set(key(r), String(r.value ?? ''));
      return {};
    }),
    get: serve(async (r, signal) => {
      await store.wait([key(r)], wait(r), signal);
      return { value: store.get(key(r)) };
    }),
    add: serve((r) => ({ count: store.add(key(r), r.delta ?? 1) })),
    wait: serve(async (r, signal) => {
      await store.wait(r.keys ?? [], wait(r), signal);
      return {};
    }),
    check: serve((r) => ({ present: store.has(r.keys ?? []) })),
    delete: serve((r) => ({ count: store.delete(key(r)) ? 1 : 0 })),
  };
}
