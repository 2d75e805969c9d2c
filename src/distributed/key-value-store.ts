import { ParallelError } from '../errors.js';

interface Waiter {
  readonly keys: readonly string[];
  readonly done: () => void;
}

/**
 * The rendezvous store's data, with torch's TCPStore semantics: `set` overwrites, `add` increments a
 * counter (created at 0) and returns the new value, `wait` blocks until every key exists. Values are
 * strings. Pure data and promises: the gRPC server (store-server.ts) serves one.
 */
export class KeyValueStore {
  private readonly values = new Map<string, string>();
  private readonly waiters = new Set<Waiter>();

  set(key: string, value: string): void {
    this.values.set(key, value);
    this.wake();
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }

  add(key: string, delta: number): number {
    const old = this.values.get(key);
    const base = old === undefined ? 0 : Number(old);
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(delta)) {
      throw new ParallelError('INVALID_ARGUMENT', `store key ${key} holds '${old}', not a counter`, {
        where: 'store add',
      });
    }
    const value = base + delta;
    this.values.set(key, String(value));
    this.wake();
    return value;
  }

  delete(key: string): boolean {
    return this.values.delete(key);
  }

  has(keys: readonly string[]): boolean[] {
    return keys.map((k) => this.values.has(k));
  }

  missing(keys: readonly string[]): string[] {
    return keys.filter((k) => !this.values.has(k));
  }

  /**
   * Resolves once every key exists; rejects with TIMEOUT naming the missing keys after `timeoutMs`, or as
   * soon as `signal` aborts (the caller went away).
   */
  wait(keys: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.missing(keys).length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        if (error) reject(error);
        else resolve();
      };
      const waiter: Waiter = { keys, done: () => finish() };
      const onAbort = () => finish(new ParallelError('TIMEOUT', 'the waiting call was cancelled'));
      const timer = setTimeout(
        () =>
          finish(
            new ParallelError(
              'TIMEOUT',
              `store keys not set within ${timeoutMs} ms: ${this.missing(keys).join(', ')}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of calls blocked in `wait` (a test checks a cancelled call leaves none behind). */
  get waiting(): number {
    return this.waiters.size;
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) if (this.missing(waiter.keys).length === 0) waiter.done();
  }
}
