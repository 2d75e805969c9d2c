import type { ParallelError } from '../errors.js';
import type { DataPlane } from './data-plane.js';
import type { FrameKind } from './frames.js';
import type { Received } from './mailbox.js';
import type { StoreClient } from './store-client.js';
import type { StoreServer } from './store-server.js';

/** Default chunk of the pipelined collectives; bench/RESULTS.md ("Distributed") has the sweep. */
export const DEFAULT_CHUNK_BYTES = 512 * 1024;

export interface ProcessGroupParts {
  readonly rank: number;
  readonly size: number;
  readonly timeoutMs: number;
  readonly chunkBytes: number;
  readonly plane: DataPlane;
  readonly store: StoreClient;
  readonly storeServer: StoreServer | null;
  readonly localRank: number;
  readonly localSize: number;
  readonly bindHost: string;
  readonly advertiseHost: string;
}

/**
 * One rank's membership in a world of processes (torch's ProcessGroup): its rank, the world's size, links
 * to every peer and the rendezvous store. Passed to every collective across ranks; nothing lives in module
 * state. Every rank must make the same collective calls in the same order (as with NCCL or Gloo): each
 * call takes the next call number, which keys its frames.
 */
export class ProcessGroup {
  private seq = 0;
  private readonly sendSeq: number[];
  private readonly recvSeq: number[];
  private closed: Promise<void> | null = null;

  readonly rank: number;
  readonly size: number;
  readonly timeoutMs: number;
  readonly chunkBytes: number;
  /** The rendezvous store, for keys a program shares between its ranks. */
  readonly store: StoreClient;
  /** This rank's place on its host (which of the host's devices it takes). */
  readonly localRank: number;
  readonly localSize: number;
  /** Where this rank listens, and the address peers reach it at. */
  readonly bindHost: string;
  readonly advertiseHost: string;
  private readonly plane: DataPlane;
  private readonly storeServer: StoreServer | null;

  constructor(parts: ProcessGroupParts) {
    this.rank = parts.rank;
    this.size = parts.size;
    this.timeoutMs = parts.timeoutMs;
    this.chunkBytes = parts.chunkBytes;
    this.store = parts.store;
    this.localRank = parts.localRank;
    this.localSize = parts.localSize;
    this.bindHost = parts.bindHost;
    this.advertiseHost = parts.advertiseHost;
    this.plane = parts.plane;
    this.storeServer = parts.storeServer;
    this.sendSeq = Array.from({ length: this.size }, () => 0);
    this.recvSeq = Array.from({ length: this.size }, () => 0);
  }

  /** The number of the next collective call (every rank counts the same calls). */
  nextSeq(): number {
    return this.seq++;
  }

  /** The number of the next point-to-point message to `dst` (the receiver counts its own the same way). */
  nextSendSeq(dst: number): number {
    return this.sendSeq[dst]!++;
  }

  nextRecvSeq(src: number): number {
    return this.recvSeq[src]!++;
  }

  /** Queues one chunk to `dst` (the payload is copied now); false once the link's buffer is full. */
  send(
    dst: number,
    kind: FrameKind,
    seq: number,
    step: number,
    chunk: number,
    chunks: number,
    payload: ArrayBufferView,
  ): boolean {
    return this.plane.send(dst, { kind, seq, step, chunk, chunks }, payload);
  }

  /** Waits for one chunk from `src`; TIMEOUT after the world's timeout, RANK_LOST if `src` goes away. */
  recv(
    src: number,
    kind: FrameKind,
    seq: number,
    step: number,
    chunk: number,
    what: string,
  ): Promise<Received> {
    return this.plane.take(src, kind, seq, step, chunk, what);
  }

  /** Resolves once the link to `dst` has room again. */
  drained(dst: number): Promise<void> {
    return this.plane.drained(dst);
  }

  /** The failure that broke this world, or null. */
  get failed(): ParallelError | null {
    return this.plane.failed;
  }

  /** Frames held and waits pending: both zero between matched collective calls. */
  get pending(): { frames: number; waiters: number } {
    return this.plane.mailbox.pending;
  }

  /**
   * Leaves the world: waits (at most the timeout) until every peer closes too, so none is cut off while
   * it still reads, then stops this rank's servers (rank 0's store last).
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.plane.close();
      this.store.close();
      await this.storeServer?.close();
    })();
    return this.closed;
  }

  /** Breaks the world with `error` (peers get it as an ABORT naming the culprit), then closes. */
  async abort(error: ParallelError): Promise<void> {
    this.plane.fail(error);
    await this.close();
  }
}
