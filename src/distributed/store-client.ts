import { Client, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { ParallelError } from '../errors.js';
import { channelCredentials, type TlsFiles } from './credentials.js';
import {
  channelOptions,
  STORE_SERVICE,
  type StoreMethod,
  type StoreReply,
  type StoreRequest,
} from './grpc-services.js';
import { TOKEN_METADATA_KEY } from './token.js';

export interface StoreClientOptions {
  /** host:port of rank 0's store. */
  readonly target: string;
  readonly token: string;
  /** How long a blocking get/wait, and the first connection, may take. */
  readonly timeoutMs: number;
  readonly tls?: TlsFiles;
  /** Names this rank in error messages. */
  readonly rank?: number;
}

/** Extra time a call's deadline gets over the server's own wait, so the server's answer arrives first. */
const DEADLINE_SLACK_MS = 2000;

/** A rank's handle on the rendezvous store (torch's TCPStore client): set, get, add, wait, check, delete. */
export class StoreClient {
  private readonly client: Client;
  private readonly metadata = new Metadata();

  constructor(private readonly options: StoreClientOptions) {
    this.client = new Client(
      options.target,
      channelCredentials(options.tls),
      channelOptions(options.timeoutMs),
    );
    this.metadata.set(TOKEN_METADATA_KEY, options.token);
  }

  /** Waits until the store answers (rank 0 may start after us), at most the timeout. */
  connect(timeoutMs = this.options.timeoutMs): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (error) => {
        if (!error) resolve();
        else
          reject(
            new ParallelError(
              'TIMEOUT',
              `the rendezvous store at ${this.options.target} (rank 0) did not answer within ${timeoutMs} ms`,
              {
                where: this.where(),
                fix: 'start rank 0 (it serves the store), check MASTER_ADDR/--master and that the port is reachable',
                cause: error,
              },
            ),
          );
      });
    });
  }

  async set(key: string, value: string): Promise<void> {
    await this.call('set', { key, value });
  }

  /** Blocks until the key exists (TCPStore's get), at most `timeoutMs`. */
  async get(key: string, timeoutMs = this.options.timeoutMs): Promise<string> {
    return (await this.call('get', { key, timeoutMs }, timeoutMs)).value ?? '';
  }

  async add(key: string, delta = 1): Promise<number> {
    return (await this.call('add', { key, delta })).count ?? 0;
  }

  async wait(keys: readonly string[], timeoutMs = this.options.timeoutMs): Promise<void> {
    await this.call('wait', { keys, timeoutMs }, timeoutMs);
  }

  async check(keys: readonly string[]): Promise<boolean[]> {
    return [...((await this.call('check', { keys })).present ?? [])];
  }

  async delete(key: string): Promise<boolean> {
    return ((await this.call('delete', { key })).count ?? 0) > 0;
  }

  close(): void {
    this.client.close();
  }

  private where(): string {
    return `${this.options.rank === undefined ? '' : `rank ${this.options.rank}, `}store ${this.options.target}`;
  }

  private call(method: StoreMethod, request: StoreRequest, waitMs = 0): Promise<StoreReply> {
    const definition = STORE_SERVICE[method];
    const deadline = Date.now() + waitMs + Math.max(DEADLINE_SLACK_MS, this.options.timeoutMs);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        this.metadata,
        { deadline },
        (error: ServiceError | null, reply?: StoreReply) => {
          if (error) reject(this.translate(error, method, request));
          else resolve(reply ?? {});
        },
      );
    });
  }

  /** gRPC statuses as the library's codes, each saying which store and what to do. */
  private translate(error: ServiceError, method: string, request: StoreRequest): ParallelError {
    const what = `store ${method} ${request.key ?? (request.keys ?? []).join(', ')}`;
    const where = this.where();
    switch (error.code) {
      case status.UNAUTHENTICATED:
        return new ParallelError(
          'RENDEZVOUS',
          `the store at ${this.options.target} refused this rank's token`,
          {
            where,
            fix: `every rank needs the same token: the launcher's, or ${'WEBGPU_PARALLEL_TOKEN'} set alike on every node`,
            cause: error,
          },
        );
      case status.DEADLINE_EXCEEDED:
        return new ParallelError('TIMEOUT', `${what}: ${error.details}`, {
          where,
          fix: 'a rank did not arrive in time: check that every rank was started, or raise --timeout',
          cause: error,
        });
      case status.UNAVAILABLE:
        return new ParallelError(
          'RANK_LOST',
          `rank 0 is unreachable: its store at ${this.options.target} did not answer ${what} (${error.details})`,
          {
            where,
            fix: 'rank 0 serves the store: see why it stopped (its own error comes first)',
            cause: error,
          },
        );
      default:
        return new ParallelError('RENDEZVOUS', `${what} failed: ${error.details}`, { where, cause: error });
    }
  }
}
