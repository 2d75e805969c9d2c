/**
 * Dawn's node bindings learn that GPU work finished by polling: while any `mapAsync` or
 * `onSubmittedWorkDone` is pending they call `setImmediate` (looked up on the global object) with a native
 * tick that processes events and queues itself again. That is a busy loop holding one core for the whole of
 * every wait. On a CPU adapter (lavapipe) it is a core the "GPU" needs.
 *
 * The backoff slows only a loop that is spinning: a tick runs at once within SPIN_MS of the last call or
 * settlement of a `mapAsync` or `onSubmittedWorkDone` (work is flowing), and when the loop has just run
 * other work for SPIN_MS or more (the host summing a chunk: the first poll after it finds what finished
 * meanwhile). Otherwise a tick is put off by a tenth of the time since the last activity, up to 1 ms: the
 * thread sleeps in the kernel for less than a timer's 1 ms resolution, a timer past it. The added latency
 * stays near a tenth of the wait. Interleaved A/B on the 2-core dev machine (lavapipe), spin against
 * backoff: 1024³ matmul 113 -> 70 ms, 256³ 4.2 -> 3.1 ms, the seed-fits pipeline 381 -> 225 ms, a tiny
 * dispatch 0.55 -> 0.31 ms; AllReduce, ReduceScatter and AllGather of 16 MiB unchanged within the noise.
 *
 * A tick is recognised as a native function passed alone: anything else goes to `setImmediate` untouched,
 * and a Dawn that stops polling this way is simply not slowed down. By default (`auto`) the backoff starts
 * once a device opens on a software adapter: on a real GPU the spin takes no core the device needs.
 * `WEBGPU_PARALLEL_DAWN_POLL=backoff` applies it everywhere, `spin` leaves Dawn's loop as it is.
 */
export const SPIN_MS = 0.5;
/** The longest a tick is put off; waits of that order use a timer, shorter ones sleep the thread. */
export const MAX_DELAY_MS = 1;

export interface PollStats {
  /** Dawn ticks seen, and those of them put off; `active`: whether the backoff applies now. */
  readonly ticks: number;
  readonly deferred: number;
  readonly active: boolean;
}

export type PollMode = 'auto' | 'backoff' | 'spin';

/** What the backoff decides for one tick, from the time of the last GPU activity (a clock in ms). */
export class PollPolicy {
  private lastActivityMs = Number.NEGATIVE_INFINITY;
  private lastTickMs = Number.NEGATIVE_INFINITY;
  ticks = 0;
  deferred = 0;

  constructor(
    private readonly now: () => number,
    /** Off, every tick runs at once (Dawn's own behaviour). */
    public active = true,
    private readonly spinMs = SPIN_MS,
  ) {}

  activity(): void {
    this.lastActivityMs = this.now();
  }

  /**
   * How long this tick waits, in ms: 0 while GPU activity is recent, then a tenth of the time since the
   * last activity (so the added latency stays near a tenth of the wait), up to 1 ms.
   */
  delayMs(): number {
    this.ticks++;
    const now = this.now();
    const sinceTick = now - this.lastTickMs;
    this.lastTickMs = now;
    const idle = now - this.lastActivityMs;
    // A tick after the loop ran other work for a while (the host summing a chunk) polls at once: only
    // back-to-back ticks, the loop spinning with nothing else to do, are slowed.
    if (!this.active || idle < this.spinMs || sinceTick >= this.spinMs) return 0;
    this.deferred++;
    return Math.min(MAX_DELAY_MS, idle / 10);
  }
}

const INSTALLED = Symbol.for('webgpu-parallel.dawnPollBackoff');
const NATIVE = /^function \w*\(\) \{ \[native code\] \}$/;

interface Installed {
  readonly policy: PollPolicy;
  readonly mode: PollMode;
}

type Hooked = typeof setImmediate & { [INSTALLED]?: Installed };

/**
 * Installs the backoff once per process (the poll loop is the process's, like the WebGPU globals Dawn
 * installs); `globals` are Dawn's, whose GPUBuffer and GPUQueue report their async calls to it.
 */
export function installPollBackoff(globals: object, mode: PollMode): void {
  if (mode === 'spin' || (globalThis.setImmediate as Hooked)[INSTALLED]) return;
  const policy = new PollPolicy(() => performance.now(), mode === 'backoff');
  const activity = () => policy.activity();
  const classes = globals as Record<string, { prototype: Record<string, unknown> } | undefined>;
  for (const [name, method] of [
    ['GPUBuffer', 'mapAsync'],
    ['GPUQueue', 'onSubmittedWorkDone'],
  ] as const) {
    const proto = classes[name]?.prototype;
    const call = proto?.[method];
    if (typeof call !== 'function') continue;
    proto![method] = function (this: unknown, ...args: unknown[]) {
      activity();
      const settled = call.apply(this, args) as Promise<unknown>;
      settled.then(activity, activity);
      return settled;
    };
  }
  const immediate = globalThis.setImmediate;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const hooked = function (this: unknown, callback: (...args: unknown[]) => void, ...args: unknown[]) {
    const isTick =
      args.length === 0 &&
      typeof callback === 'function' &&
      NATIVE.test(Function.prototype.toString.call(callback));
    const delay = isTick ? policy.delayMs() : 0;
    if (delay >= MAX_DELAY_MS) return setTimeout(callback, delay) as unknown as NodeJS.Immediate;
    // Below a timer's 1 ms resolution the thread sleeps in the kernel (a futex wait), which frees the core
    // as a timer would; the event loop had nothing but this tick to run.
    if (delay > 0) Atomics.wait(sleeper, 0, 0, delay);
    return immediate(callback, ...args);
  } as Hooked;
  // util.promisify(setImmediate) keeps working through the hook.
  const promisified = Symbol.for('nodejs.util.promisify.custom');
  Object.defineProperty(hooked, promisified, {
    value: (immediate as unknown as Record<symbol, unknown>)[promisified],
  });
  hooked[INSTALLED] = { policy, mode };
  globalThis.setImmediate = hooked;
}

/** In `auto` mode, a device opened on a software adapter turns the backoff on for the process. */
export function noteAdapter(isSoftware: boolean): void {
  const installed = (globalThis.setImmediate as Hooked)[INSTALLED];
  if (installed?.mode === 'auto' && isSoftware) installed.policy.active = true;
}

/** The backoff's counts (`active`: whether it defers ticks now), or null where it is not installed. */
export function pollStats(): PollStats | null {
  const installed = (globalThis.setImmediate as Hooked)[INSTALLED];
  if (!installed) return null;
  const { ticks, deferred, active } = installed.policy;
  return { ticks, deferred, active };
}

export function pollModeFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): PollMode {
  const mode = env.WEBGPU_PARALLEL_DAWN_POLL;
  return mode === 'spin' || mode === 'backoff' ? mode : 'auto';
}
