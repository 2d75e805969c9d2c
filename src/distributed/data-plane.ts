import {
  Client,
  type ClientDuplexStream,
  Metadata,
  Server,
  type ServerDuplexStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import type { ParallelError } from '../errors.js';
import { channelCredentials, type TlsFiles } from './credentials.js';
import {
  decodeHeader,
  encodeFrame,
  encodeJsonFrame,
  FRAME_KIND,
  type FrameHeader,
  framePayload,
} from './frames.js';
import { channelOptions, DATA_SERVICE, serverOptions } from './grpc-services.js';
import { Mailbox, type Received } from './mailbox.js';
import { type AbortNotice, fromNotice, RankError, toNotice } from './rank-error.js';
import { bindServer, hostPort, shutdownServer } from './store-server.js';
import { hasToken, TOKEN_METADATA_KEY } from './token.js';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface DataPlaneOptions {
  readonly rank: number;
  readonly size: number;
  readonly token: string;
  /** The world's id from the store: a hello from another world (same token, say) is refused. */
  readonly worldId: string;
  readonly host: string;
  readonly timeoutMs: number;
  readonly tls?: TlsFiles;
}

interface Hello {
  readonly rank: number;
  readonly worldId: string;
}

type Outgoing = ServerDuplexStream<Buffer, Buffer>;
type Incoming = ClientDuplexStream<Buffer, Buffer>;

/**
 * A rank's links to every other rank: its gRPC server, on which each peer opens one stream that carries
 * this rank's frames to that peer, and one stream it opens to each peer's server, on which that peer's
 * frames arrive (so a receiver's HTTP/2 window is a client's, which grpc-js lets us size). Every frame
 * that arrives goes to the mailbox. A link that drops without a BYE fails the whole world with RANK_LOST
 * naming the peer, and the failure is sent on to the other peers as an ABORT, so every rank reports the
 * rank that caused it, within the world's timeout, instead of waiting on a ring that cannot complete.
 */
export class DataPlane {
  readonly mailbox: Mailbox;
  private readonly outgoing: (Outgoing | undefined)[];
  private readonly incoming: (Incoming | undefined)[] = [];
  private readonly clients: Client[] = [];
  private readonly helloFrom: boolean[];
  private readonly byeFrom: boolean[];
  private readonly linkClosed: boolean[];
  private failure: ParallelError | null = null;
  private closing = false;
  private readonly listeners = new Set<() => void>();
  private readonly failureListeners = new Set<(error: ParallelError) => void>();

  private constructor(
    private readonly options: DataPlaneOptions,
    private readonly server: Server,
    readonly port: number,
  ) {
    const n = options.size;
    this.outgoing = Array.from({ length: n }, () => undefined);
    this.helloFrom = Array.from({ length: n }, (_, r) => r === options.rank);
    this.byeFrom = Array.from({ length: n }, () => false);
    this.linkClosed = Array.from({ length: n }, () => false);
    this.mailbox = new Mailbox(options.timeoutMs, (src, what) => {
      const error = new RankError(
        'TIMEOUT',
        src,
        `rank ${options.rank} waited ${options.timeoutMs} ms for rank ${src} (${what})`,
        {
          where: `rank ${options.rank}`,
          fix: `rank ${src} is alive but not sending: is it stuck, or calling collectives in another order? raise --timeout if it is only slow`,
        },
      );
      this.fail(error);
      return error;
    });
  }

  /** Starts this rank's server on `host` (a free port); peers connect once its address is in the store. */
  static async listen(options: DataPlaneOptions): Promise<DataPlane> {
    const server = new Server(serverOptions());
    let plane: DataPlane | undefined;
    const pending: Outgoing[] = [];
    server.addService(DATA_SERVICE, {
      exchange: (call: Outgoing) => {
        if (plane) plane.accept(call);
        else pending.push(call);
      },
    });
    const port = await bindServer(
      server,
      options.host,
      0,
      options.tls,
      `rank ${options.rank}'s data streams`,
    );
    plane = new DataPlane(options, server, port);
    for (const call of pending) plane.accept(call);
    return plane;
  }

  get rank(): number {
    return this.options.rank;
  }

  /** The error that broke the world, or null while it is whole. */
  get failed(): ParallelError | null {
    return this.failure;
  }

  onFailure(listener: (error: ParallelError) => void): void {
    this.failureListeners.add(listener);
  }

  /** Opens a stream to every peer and waits until every link both ways said hello (at most the timeout). */
  async connect(peers: readonly PeerAddress[]): Promise<void> {
    const { rank, timeoutMs } = this.options;
    const metadata = new Metadata();
    metadata.set(TOKEN_METADATA_KEY, this.options.token);
    const credentials = channelCredentials(this.options.tls);
    peers.forEach((peer, p) => {
      if (p === rank) return;
      const client = new Client(hostPort(peer.host, peer.port), credentials, channelOptions(timeoutMs));
      this.clients.push(client);
      const path = DATA_SERVICE.exchange.path;
      const call = client.makeBidiStreamRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        metadata,
        {},
      );
      this.incoming[p] = call;
      call.on('data', (frame: Buffer) => this.onFrame(p, frame));
      call.on('error', (error: ServiceError) => {
        if (error.code === status.UNAUTHENTICATED || error.code === status.PERMISSION_DENIED) {
          this.linkClosed[p] = true;
          this.fail(
            new RankError(
              'RENDEZVOUS',
              p,
              `rank ${p} refused rank ${rank}: ${describeStatus(error, peer, p)}`,
              {
                fix: 'every rank of a world needs the same token and the same store (MASTER_ADDR/PORT)',
              },
            ),
          );
        } else this.linkDown(p, describeStatus(error, peer, p));
      });
      call.on('end', () => this.linkDown(p, 'its stream to this rank ended'));
      call.write(encodeJsonFrame(FRAME_KIND.hello, { rank, worldId: this.options.worldId } satisfies Hello));
    });
    await this.until(
      () => this.missingLinks().length === 0,
      () => {
        const missing = this.missingLinks();
        return new RankError(
          'TIMEOUT',
          missing[0]!,
          `rank ${rank} could not connect to rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} within ${timeoutMs} ms`,
          {
            where: missing.map((p) => `rank ${p} at ${hostPort(peers[p]!.host, peers[p]!.port)}`).join('; '),
            fix: 'check that each rank binds an address the others reach (--bind) and no firewall drops the port',
          },
        );
      },
    );
  }

  /** Queues a frame to `dst`, copying the payload now; false when the link's buffer is full. */
  send(dst: number, header: FrameHeader, payload?: ArrayBufferView): boolean {
    if (this.failure) throw this.failure;
    const link = this.outgoing[dst];
    if (!link || this.linkClosed[dst]) throw this.lostError(dst, 'it has no open link to this rank');
    return link.write(encodeFrame(header, payload));
  }

  /** Resolves when the link to `dst` can take more (after `send` returned false), or the world failed. */
  drained(dst: number): Promise<void> {
    const link = this.outgoing[dst];
    if (!link?.writableNeedDrain || this.failure) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        link.off('drain', done);
        this.failureListeners.delete(done);
        resolve();
      };
      link.on('drain', done);
      this.failureListeners.add(done);
    });
  }

  take(src: number, kind: number, seq: number, step: number, chunk: number, what: string): Promise<Received> {
    return this.mailbox.take(src, kind, seq, step, chunk, what);
  }

  /** Breaks the world with `error`; peers get it as an ABORT so they report the same culprit. */
  fail(error: ParallelError): void {
    if (this.failure || this.closing) return;
    this.failure = error;
    this.mailbox.fail(error);
    const notice = encodeJsonFrame(FRAME_KIND.abort, toNotice(error));
    this.outgoing.forEach((link, p) => {
      if (link && !this.linkClosed[p] && !this.byeFrom[p]) link.write(notice);
    });
    for (const listener of this.failureListeners) listener(error);
    this.wake();
  }

  /**
   * Leaves the world. Whole: sends BYE to every peer and waits (at most the timeout) for theirs, so no rank
   * tears its links down while a peer still reads from them; then closes. Broken, or not `graceful`
   * (a rendezvous that failed): closes at once.
   */
  async close(graceful = true): Promise<void> {
    if (graceful && !this.failure && !this.closing) {
      const bye = encodeFrame({ kind: FRAME_KIND.bye, seq: 0, step: 0, chunk: 0, chunks: 0 });
      this.outgoing.forEach((link, p) => {
        if (link && !this.linkClosed[p]) link.write(bye);
      });
      await this.until(
        () => this.byeFrom.every((b, p) => b || p === this.rank || this.linkClosed[p] || !this.outgoing[p]),
        () => null,
      ).catch(() => undefined);
    }
    this.closing = true;
    for (const link of this.outgoing) link?.end();
    for (const call of this.incoming) call?.end();
    for (const client of this.clients) client.close();
    await shutdownServer(this.server, this.failure ? 200 : 1000);
  }

  private accept(call: Outgoing): void {
    if (!hasToken(call.metadata, this.options.token)) {
      call.emit('error', { code: status.UNAUTHENTICATED, details: 'missing or wrong world token' });
      return;
    }
    let peer = -1;
    call.on('data', (frame: Buffer) => {
      if (peer >= 0) return;
      const header = decodeHeader(frame);
      let hello: Hello | null = null;
      try {
        hello =
          header?.kind === FRAME_KIND.hello ? (JSON.parse(framePayload(frame).toString()) as Hello) : null;
      } catch {
        hello = null;
      }
      const refusal = this.refuse(hello);
      if (refusal) {
        call.emit('error', { code: status.PERMISSION_DENIED, details: refusal });
        return;
      }
      peer = hello!.rank;
      this.outgoing[peer] = call;
      call.write(encodeJsonFrame(FRAME_KIND.hello, { rank: this.rank, worldId: this.options.worldId }));
      this.wake();
    });
    const gone = (why: string) => {
      if (peer >= 0 && this.outgoing[peer] === call) this.linkDown(peer, why);
    };
    call.on('cancelled', () => gone('its connection to this rank was cut'));
    call.on('error', (error: Error) => gone(error.message));
  }

  private refuse(hello: Hello | null): string | null {
    if (!hello || !Number.isSafeInteger(hello.rank))
      return 'the first frame of a data stream must be a hello';
    if (hello.worldId !== this.options.worldId) return 'this rank belongs to another world';
    if (hello.rank < 0 || hello.rank >= this.options.size || hello.rank === this.rank) {
      return `rank ${hello.rank} is not a peer of rank ${this.rank} in a world of ${this.options.size}`;
    }
    if (this.outgoing[hello.rank]) return `rank ${hello.rank} is already connected`;
    return null;
  }

  private onFrame(p: number, frame: Buffer): void {
    const header = decodeHeader(frame);
    if (!header) return;
    switch (header.kind) {
      case FRAME_KIND.hello:
        this.helloFrom[p] = true;
        this.wake();
        return;
      case FRAME_KIND.data:
      case FRAME_KIND.p2p:
        this.mailbox.deliver(p, { header, payload: framePayload(frame) });
        return;
      case FRAME_KIND.abort: {
        const notice = JSON.parse(framePayload(frame).toString()) as AbortNotice;
        if (this.failure || this.closing) return;
        // The reporter's failure becomes ours as it is: re-sending it would only echo it back.
        this.failure = fromNotice(notice, p);
        this.mailbox.fail(this.failure);
        for (const listener of this.failureListeners) listener(this.failure);
        this.wake();
        return;
      }
      case FRAME_KIND.bye:
        this.byeFrom[p] = true;
        this.mailbox.senderLeft(
          p,
          new RankError(
            'RANK_LOST',
            p,
            `rank ${p} closed its process group while rank ${this.rank} still waited for it`,
            {
              fix: 'every rank must make the same collective calls, in the same order, before closing',
            },
          ),
        );
        this.wake();
        return;
    }
  }

  private linkDown(p: number, why: string): void {
    if (this.linkClosed[p]) return;
    this.linkClosed[p] = true;
    this.wake();
    if (this.closing || this.byeFrom[p]) return;
    this.fail(this.lostError(p, why));
  }

  private lostError(p: number, why: string): RankError {
    return new RankError('RANK_LOST', p, `rank ${p} is gone: ${why}`, {
      where: `seen by rank ${this.rank}`,
      fix: `see rank ${p}'s own output for why it stopped (killed, crashed, or its host unreachable)`,
    });
  }

  private missingLinks(): number[] {
    const missing: number[] = [];
    for (let p = 0; p < this.options.size; p++) {
      if (p !== this.rank && (!this.helloFrom[p] || !this.outgoing[p])) missing.push(p);
    }
    return missing;
  }

  private wake(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolves when `done()` holds; rejects with the world's failure, or `timedOut()`'s error after the timeout. */
  private until(done: () => boolean, timedOut: () => Error | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure && !this.closing) finish(this.failure);
        else if (done()) finish();
      };
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => finish(timedOut() ?? new Error('timed out')), this.options.timeoutMs);
      this.listeners.add(check);
      check();
    });
  }
}

function describeStatus(error: ServiceError, peer: PeerAddress, p: number): string {
  const at = hostPort(peer.host, peer.port);
  if (error.code === status.UNAUTHENTICATED) return `it refused this rank's token (${at})`;
  if (error.code === status.PERMISSION_DENIED) return `it refused this rank: ${error.details}`;
  if (error.code === status.UNAVAILABLE) return `its server at ${at} is unreachable (${error.details})`;
  return `its stream to this rank failed (${status[error.code] ?? error.code}: ${error.details}) [rank ${p}]`;
}
