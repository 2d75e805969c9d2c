import type { ParallelError } from '../errors.js';
import type { FrameHeader } from './frames.js';

export interface Received {
  readonly header: FrameHeader;
  readonly payload: Uint8Array;
}

interface Waiter {
  resolve(frame: Received): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

const keyOf = (src: number, kind: number, seq: number, step: number, chunk: number) =>
  `${src}:${kind}:${seq}:${step}:${chunk}`;

/**
 * Frames that arrived before anyone asked for them, and receivers waiting for frames that have not: keyed
 * by sender, kind, call number, step and chunk, so that a ring may take its chunks in any order. A wait
 * that outlasts the timeout, a failure of the world, or a sender that left rejects.
 */
export class Mailbox {
  private readonly frames = new Map<string, Received>();
  private readonly waiters = new Map<string, Waiter>();
  private failure: Error | null = null;
  private readonly left = new Map<number, Error>();

  constructor(
    private readonly timeoutMs: number,
    /** Builds the error of a wait that timed out (the world then fails with it). */
    private readonly onTimeout: (src: number, what: string) => ParallelError,
  ) {}

  deliver(src: number, frame: Received): void {
    const h = frame.header;
    const key = keyOf(src, h.kind, h.seq, h.step, h.chunk);
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      clearTimeout(waiter.timer);
      waiter.resolve(frame);
    } else this.frames.set(key, frame);
  }

  take(src: number, kind: number, seq: number, step: number, chunk: number, what: string): Promise<Received> {
    const key = keyOf(src, kind, seq, step, chunk);
    const ready = this.frames.get(key);
    if (ready) {
      this.frames.delete(key);
      return Promise.resolve(ready);
    }
    const gone = this.failure ?? this.left.get(src);
    if (gone) return Promise.reject(gone);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(this.onTimeout(src, what));
      }, this.timeoutMs);
      this.waiters.set(key, { resolve, reject, timer });
    });
  }

  /** Rejects every wait, now and later: the world is broken. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.waiters.clear();
    this.frames.clear();
  }

  /** A sender that closed its process group: what it sent is still taken, anything more rejects. */
  senderLeft(src: number, error: Error): void {
    this.left.set(src, error);
    for (const [key, waiter] of this.waiters) {
      if (!key.startsWith(`${src}:`)) continue;
      this.waiters.delete(key);
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  /** Frames held and waits pending (both zero between collectives when every rank did the same calls). */
  get pending(): { frames: number; waiters: number } {
    return { frames: this.frames.size, waiters: this.waiters.size };
  }
}
