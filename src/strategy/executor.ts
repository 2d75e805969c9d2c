import type { CollectiveContext } from '../collectives/context.js';
import { gatherToHost } from '../collectives/host-io.js';
import { type DistributedTensor, Replicate } from '../collectives/layout.js';
import { redistribute } from '../collectives/redistribute.js';
import { hostBytes } from '../collectives/traffic.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { threadCpuMs } from '../runtime/thread-cpu.js';
import { HOST_LANE, IN_FLIGHT, type Lane, lanesIn, type PipelineElement, type Schedule } from './schedule.js';
import type { StageRuntime } from './stages/kind.js';

/** Host-clock interval of one communication of one microbatch, and the bytes it moved through the host. */
export interface CommSpan {
  readonly element: number;
  readonly microbatch: number;
  /** When the host started it. */
  readonly startNs: number;
  /**
   * When the host saw the source devices finish the work queued before it (the producing stage's kernels,
   * and on a shared device other stages' too): its reads wait for that. The report prefers the same instant
   * from device timestamps (`transferReadyNs`): this one can arrive a poll interval late.
   */
  readonly readyNs: number;
  readonly endNs: number;
  readonly hostBytes: number;
  /** Across ranks: the rank that timed it, and whether it held any of the sources (else it only received). */
  readonly rank?: number;
  readonly holdsSources?: boolean;
}

export interface ExecutionResult {
  readonly startNs: number;
  readonly endNs: number;
  /**
   * CPU time of the host thread over the run (it issues every kernel and moves every transfer's bytes), or
   * null where the OS does not report a thread's CPU time.
   */
  readonly hostCpuMs: number | null;
  readonly comms: readonly CommSpan[];
  /** The final output of each microbatch, on the host (across ranks: those this rank computed). */
  readonly outputs: readonly Float32Array[];
}

type CommElement = Extract<PipelineElement, { kind: 'comm' }>;

/**
 * Carries one communication of one microbatch: the seam between the executor and where the bytes go (the
 * host of one process, or the wire between ranks).
 */
export interface Transport {
  /**
   * Moves `source` (this process's shards of the producing stage's output; undefined where it holds none)
   * to the layout the consuming stage reads, on this process's devices of it (undefined where it holds
   * none). The source's shards are freed, except those the output keeps.
   */
  communicate(
    element: CommElement,
    microbatch: number,
    source: DistributedTensor | undefined,
  ): Promise<{ output: DistributedTensor | undefined; hostBytes: number }>;
}

/** One process: the communication is a redistribution through the host onto the consumer's devices. */
export function hostTransport(
  ctx: CollectiveContext,
  runtimes: ReadonlyMap<number, StageRuntime>,
): Transport {
  return {
    async communicate(element, microbatch, source) {
      const consumer = runtimes.get(element.index + 1)!;
      const { output, traffic } = await redistribute(
        ctx,
        source!,
        consumer.groupFor(microbatch),
        consumer.inputPlacement(),
        { label: `${element.name}/mb${microbatch}`, reduceOn: 'host' },
      );
      source!.free(output.shards);
      return { output, hostBytes: hostBytes(traffic) };
    },
  };
}

export interface ExecutionInput {
  readonly ctx: CollectiveContext;
  readonly schedule: Schedule;
  /** The runtime of each compute element, by element index. */
  readonly runtimes: ReadonlyMap<number, StageRuntime>;
  /** Where communications go; the host of this one process (`hostTransport`) when absent. */
  readonly transport?: Transport;
  /** Across ranks: this rank's number, stamped on its communications' spans. */
  readonly rank?: number;
  readonly onProgress?: () => void;
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Tags the kernels each device of `group` queues from now on, so the measurement can find the stage's. */
function tag(group: DeviceGroup, name: string, microbatch: number): void {
  for (const d of group.devices) d.setProfileTag(`${name}/mb${microbatch}`);
}

type ElementOutput = DistributedTensor | Float32Array | undefined;

/**
 * Runs one element for one microbatch: a stage's forward on its devices, or a communication on the host.
 * Across ranks the output is undefined where this process holds none of the devices it lands on.
 */
async function runElement(
  input: ExecutionInput,
  element: PipelineElement,
  microbatch: number,
  previous: DistributedTensor | undefined,
  comms: CommSpan[],
): Promise<ElementOutput> {
  if (element.kind === 'compute') {
    const runtime = input.runtimes.get(element.index)!;
    tag(runtime.groupFor(microbatch), element.name, microbatch);
    let x = previous;
    // What the stage before the communication still owes its summed output (a row split's bias).
    const producer =
      input.schedule.elements[element.index - 1]?.kind === 'comm'
        ? input.runtimes.get(element.index - 2)
        : undefined;
    if (x && producer?.finishTransfer) x = await producer.finishTransfer(x);
    const output = await runtime.forward(x ?? null, microbatch);
    // Queued kernels still read it; WebGPU keeps a destroyed buffer alive until they finish.
    x?.free();
    return output;
  }
  const source = previous;
  const transport = input.transport ?? hostTransport(input.ctx, input.runtimes);
  const startNs = performance.now() * 1e6;
  // Watches the sources' queues without holding the transfer back: its reads are queued behind the same work.
  const ready = source
    ? Promise.all(source.group.devices.map((d) => d.sync())).then(() => performance.now() * 1e6)
    : Promise.resolve(startNs);
  const [{ output, hostBytes: bytes }, readyNs] = await Promise.all([
    transport.communicate(element, microbatch, source),
    ready,
  ]);
  const endNs = performance.now() * 1e6;
  comms.push({
    element: element.index,
    microbatch,
    startNs,
    readyNs: Math.min(readyNs, endNs),
    endNs,
    hostBytes: bytes,
    ...(input.rank === undefined ? {} : { rank: input.rank, holdsSources: source !== undefined }),
  });
  return output;
}

/**
 * Runs the schedule with every lane (device, host) working through its own action list at once: a device
 * queues a stage's kernels as soon as its input is ready, so stages work on different microbatches
 * together and the host's transfers overlap the devices' compute. A task that spans several lanes (a
 * tensor-parallel stage) starts when each of them has reached it, which keeps every lane's order.
 */
export async function executePipelined(input: ExecutionInput): Promise<ExecutionResult> {
  const { schedule } = input;
  const key = (e: number, mb: number) => `${e}/${mb}`;
  const results = new Map<string, Deferred<ElementOutput>>();
  const arrivals = new Map<string, Deferred<void>[]>();
  const comms: CommSpan[] = [];
  const outputs: Float32Array[] = [];
  for (const list of schedule.actions.values()) {
    for (const action of list) {
      const k = key(action.element, action.microbatch);
      if (results.has(k)) continue;
      results.set(k, deferred());
      const lanes = lanesIn(schedule, schedule.elements[action.element]!, action.microbatch);
      arrivals.set(
        k,
        lanes.map(() => deferred<void>()),
      );
    }
  }
  const last = schedule.elements.length - 1;
  const cpuAtStart = threadCpuMs();
  const startNs = performance.now() * 1e6;
  const lane = async (laneId: Lane) => {
    for (const action of schedule.actions.get(laneId)!) {
      const k = key(action.element, action.microbatch);
      const lanesOfTask = arrivals.get(k)!;
      const index = lanesIn(schedule, schedule.elements[action.element]!, action.microbatch).indexOf(laneId);
      lanesOfTask[index]!.resolve();
      const result = results.get(k)!;
      const leader = index === 0;
      if (leader) {
        try {
          await Promise.all(lanesOfTask.map((d) => d.promise));
          // No element runs more than IN_FLIGHT microbatches ahead of its consumer: what the memory
          // estimate counts, and so what the cap it validated against holds (see estimateMemory).
          await results.get(key(action.element + 1, action.microbatch - IN_FLIGHT))?.promise;
          // Across ranks the element before may have run on other processes only: then there is nothing here.
          const previous =
            action.element > 0
              ? ((await results.get(key(action.element - 1, action.microbatch))?.promise) as
                  | DistributedTensor
                  | undefined)
              : undefined;
          const output = await runElement(
            input,
            schedule.elements[action.element]!,
            action.microbatch,
            previous,
            comms,
          );
          if (action.element === last && output !== undefined) {
            outputs[action.microbatch] = await finalOutput(input, output);
            input.onProgress?.();
          }
          result.resolve(output);
        } catch (error) {
          result.reject(error);
          throw error;
        }
      } else {
        await result.promise;
      }
    }
  };
  await Promise.all(schedule.lanes.map(lane));
  return { startNs, endNs: performance.now() * 1e6, hostCpuMs: cpuSince(cpuAtStart), comms, outputs };
}

/**
 * The last element's output on the host. A last stage that leaves partial sums (a row split) has them
 * summed on its first device, and what it still owes them (its bias) added there.
 */
async function finalOutput(
  input: ExecutionInput,
  output: DistributedTensor | Float32Array,
): Promise<Float32Array> {
  if (output instanceof Float32Array) return output;
  const runtime = input.runtimes.get(input.schedule.elements.length - 1);
  let result = output;
  if (output.placement.kind === 'partial' && runtime?.finishTransfer) {
    const first = output.group.select([output.group.devices[0]!.id]);
    const summed = await redistribute(input.ctx, output, first, Replicate(), { label: 'final-sum' });
    output.free(summed.output.shards);
    result = await runtime.finishTransfer(summed.output);
  }
  try {
    return (await gatherToHost(result)) as Float32Array;
  } finally {
    result.free();
  }
}

function cpuSince(start: number | null): number | null {
  const now = threadCpuMs();
  return start === null || now === null ? null : now - start;
}

/** The baseline: one microbatch at a time, each element finished (devices synced) before the next starts. */
export async function executeSequential(input: ExecutionInput): Promise<ExecutionResult> {
  const { schedule } = input;
  const comms: CommSpan[] = [];
  const outputs: Float32Array[] = [];
  const cpuAtStart = threadCpuMs();
  const startNs = performance.now() * 1e6;
  for (let mb = 0; mb < schedule.microbatches; mb++) {
    let current: ElementOutput;
    for (const element of schedule.elements) {
      if (lanesIn(schedule, element, mb).length === 0) {
        current = undefined;
        continue;
      }
      current = await runElement(input, element, mb, current as DistributedTensor | undefined, comms);
      if (current && !(current instanceof Float32Array)) await current.group.sync();
    }
    if (current === undefined) continue;
    outputs[mb] = await finalOutput(input, current);
    input.onProgress?.();
  }
  return { startNs, endNs: performance.now() * 1e6, hostCpuMs: cpuSince(cpuAtStart), comms, outputs };
}

export { HOST_LANE };
