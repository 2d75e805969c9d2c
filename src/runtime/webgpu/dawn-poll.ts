/**
 * Dawn's node bindings learn that GPU work finished by polling: while any `mapAsync` or
 * `onSubmittedWorkDone` is pending they call `setImmediate` (looked up on the global object) with a native
 * tick that processes events and queues itself again. That is a busy loop holding one core for the whole of
 * every wait. On a CPU adapter (lavapipe) it is a core the "GPU" needs: in an interleaved A/B on the 2-core
 * dev machine a 1024³ matmul took 128 ms spinning and 85 ms backed off, the seed-fits pipeline 388 and 262 ms.
 *
 * The backoff keeps the spin while work is flowing: within SPIN_MS of the last call or settlement of a
 * `mapAsync` or `onSubmittedWorkDone`, ticks still run at once, so latency-bound work (the collectives'
 * chunked reads, which settle in ~0.25 ms) is unchanged; past that, a tick waits for a 1 ms timer, freeing
 * the core for the rest of a long wait. A tick is recognised as a native function passed alone: anything
 * else goes to `setImmediate` untouched, and a Dawn that stops polling this way is simply not slowed down.
 *
 * By default (`auto`) the backoff starts once a device opens on a software adapter: on a real GPU the spin
 * takes no core the device needs, and a deferred tick would only add up to 1 ms to a wait.
 * `WEBGPU_PARALLEL_DAWN_POLL=backoff` applies it everywhere, `spin` leaves Dawn's loop as it is.
 */
export const SPIN_MS = 0.5;

export interface PollStats {
  /** Dawn ticks seen, and those of them deferred to a timer. */
  readonly ticks: number;
  readonly deferred: number;
  readonly active: boolean;
}

export type PollMode = 'auto' | 'backoff' | 'spin';

/** What the backoff decides for one tick, from the time of the last GPU activity (a clock in ms). */
export class PollPolicy {
  private lastActivityMs = Number.NEGATIVE_INFINITY;
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

  /** Whether this tick runs at once (true) or after a timer. */
  spinNow(): boolean {
    this.ticks++;
    if (!this.active || this.now() - this.lastActivityMs < this.spinMs) return true;
    this.deferred++;
    return false;
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
  const hooked = function (this: unknown, callback: (...args: unknown[]) => void, ...args: unknown[]) {
    const isTick =
      args.length === 0 &&
      typeof callback === 'function' &&
      NATIVE.test(Function.prototype.toString.call(callback));
    if (!isTick || policy.spinNow()) return immediate(callback, ...args);
    return setTimeout(callback, 1) as unknown as NodeJS.Immediate;
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

export function pollModeFromEnv(env: NodeJS.ProcessEnv = process.env): PollMode {
  const mode = env.WEBGPU_PARALLEL_DAWN_POLL;
  return mode === 'spin' || mode === 'backoff' ? mode : 'auto';
}
