import { median } from '../stats.js';
import { allToAllRanks } from './all-to-all-ranks.js';
import { broadcastRanks, reduceRanks } from './chain.js';
import { recvFrom, sendTo } from './point-to-point.js';
import type { ProcessGroup } from './process-group.js';
import { rawSocketRing } from './raw-socket-probe.js';
import { allGatherRanks, allReduceRanks, barrierRanks, reduceScatterRanks } from './ring.js';

/** The collectives `comm-test` times, by nccl-tests' names. */
export const COMM_OPS = [
  'all_reduce',
  'all_gather',
  'reduce_scatter',
  'broadcast',
  'reduce',
  'send_recv',
  'all_to_all',
] as const;
export type CommOp = (typeof COMM_OPS)[number];

export interface CommTestOptions {
  readonly ops: readonly CommOp[];
  /** nccl-tests' size: the buffer (a gather's whole output, an all_to_all's send buffer), in bytes. */
  readonly sizes: readonly number[];
  readonly iters: number;
  readonly warmup: number;
  /** Also time plain TCP between the same endpoints in the ring's pattern, at each size (needs the token). */
  readonly rawSocket?: { readonly token: string };
  /** Called after each timed iteration (a test waits for this to kill a rank mid-run). */
  readonly onIteration?: (op: CommOp, bytes: number, iteration: number) => void;
}

export interface CommRecord {
  readonly op: CommOp | 'raw_socket';
  readonly bytes: number;
  readonly ranks: number;
  /** Median over iterations of the slowest rank's time. */
  readonly median_ms: number;
  readonly algbw_gbps: number;
  readonly busbw_gbps: number;
  /** Wrong values summed over every rank (closed-form checks); 0 for the raw probe. */
  readonly wrong: number;
  readonly iters: number;
}

/** nccl-tests' bus factor: what each link carries against the algorithm bandwidth. */
export function busFactor(op: CommOp | 'raw_socket', n: number): number {
  if (op === 'all_reduce') return (2 * (n - 1)) / n;
  if (op === 'all_gather' || op === 'reduce_scatter' || op === 'all_to_all') return (n - 1) / n;
  return 1;
}

interface Case {
  /** Refills the inputs an in-place collective overwrote (untimed). */
  prepare?(): void;
  run(): Promise<void>;
  /** Wrong values on this rank. */
  check(): number;
}

const f = (i: number) => (i % 13) + 1;

function countWrong(got: Float32Array, want: (i: number) => number, offset = 0): number {
  let wrong = 0;
  for (let i = 0; i < got.length; i++) if (got[i] !== want(i + offset)) wrong++;
  return wrong;
}

/** Inputs with closed-form results (small integers, exact in f32 at any rank count used here). */
function makeCase(pg: ProcessGroup, op: CommOp, bytes: number): Case {
  const n = pg.size;
  const r = pg.rank;
  const count = Math.max(1, Math.floor(bytes / 4));
  const triangle = (n * (n + 1)) / 2;
  switch (op) {
    case 'all_reduce': {
      const data = new Float32Array(count);
      let out: Float32Array = data;
      return {
        prepare: () => {
          for (let i = 0; i < count; i++) data[i] = (r + 1) * f(i);
        },
        run: async () => {
          out = await allReduceRanks(pg, data);
        },
        check: () => countWrong(out, (i) => triangle * f(i)),
      };
    }
    case 'all_gather': {
      const local = Math.max(1, Math.floor(count / n));
      const block = Float32Array.from({ length: local }, (_, i) => r * 7 + (i % 11));
      const out = new Float32Array(local * n);
      return {
        run: async () => {
          await allGatherRanks(pg, block, undefined, out);
        },
        check: () => countWrong(out, (j) => Math.floor(j / local) * 7 + ((j % local) % 11)),
      };
    }
    case 'reduce_scatter': {
      const total = Math.max(n, count - (count % n));
      const data = new Float32Array(total);
      let out: Float32Array = new Float32Array(0);
      return {
        prepare: () => {
          for (let i = 0; i < total; i++) data[i] = (r + 1) * f(i);
        },
        run: async () => {
          out = await reduceScatterRanks(pg, data);
        },
        check: () => countWrong(out, (i) => triangle * f(i), (total / n) * r),
      };
    }
    case 'broadcast': {
      const data = new Float32Array(count);
      return {
        prepare: () => {
          for (let i = 0; i < count; i++) data[i] = r === 0 ? f(i) : 0;
        },
        run: async () => {
          await broadcastRanks(pg, data, 0);
        },
        check: () => countWrong(data, f),
      };
    }
    case 'reduce': {
      const data = new Float32Array(count);
      return {
        prepare: () => {
          for (let i = 0; i < count; i++) data[i] = (r + 1) * f(i);
        },
        run: async () => {
          await reduceRanks(pg, data, 0);
        },
        check: () => countWrong(data, (i) => (r === 0 ? triangle : r + 1) * f(i)),
      };
    }
    case 'send_recv': {
      // A ring shift: every rank sends to its right and receives from its left, all links at once.
      const data = Float32Array.from({ length: count }, (_, i) => r * 5 + (i % 9));
      const left = (r + n - 1) % n;
      let out: Float32Array = new Float32Array(0);
      return {
        run: async () => {
          const sent = sendTo(pg, (r + 1) % n, data);
          out = await recvFrom(pg, left);
          await sent;
        },
        check: () => (out.length === count ? countWrong(out, (i) => left * 5 + (i % 9)) : count),
      };
    }
    case 'all_to_all': {
      const part = Math.max(1, Math.floor(count / n));
      const parts = Array.from({ length: n }, (_, j) =>
        Float32Array.from({ length: part }, (_, i) => r * 100 + j + (i % 3)),
      );
      let out: Float32Array[] = [];
      return {
        run: async () => {
          out = await allToAllRanks(pg, parts);
        },
        check: () => out.reduce((w, got, s) => w + countWrong(got, (i) => s * 100 + r + (i % 3)), 0),
      };
    }
  }
}

/**
 * Times each collective at each size across the world, nccl-tests style, and checks every result in
 * closed form on every rank. Every rank gets the same records: times are the slowest rank's (gathered),
 * wrong counts are summed over ranks (reduced), both over the wire.
 */
export async function runCommTest(
  pg: ProcessGroup,
  options: CommTestOptions,
  onRecord?: (record: CommRecord) => void,
): Promise<CommRecord[]> {
  const records: CommRecord[] = [];
  const emit = (record: CommRecord) => {
    records.push(record);
    onRecord?.(record);
  };
  const n = pg.size;
  for (const bytes of options.sizes) {
    if (options.rawSocket) {
      const rates: number[] = [];
      for (let i = 0; i < Math.max(1, Math.min(3, options.iters)); i++) {
        rates.push(await rawSocketRing(pg, bytes, options.rawSocket.token));
      }
      const rate = median(rates);
      emit({
        op: 'raw_socket',
        bytes,
        ranks: n,
        median_ms: (bytes / rate) * 1000,
        algbw_gbps: rate / 1e9,
        busbw_gbps: rate / 1e9,
        wrong: 0,
        iters: rates.length,
      });
    }
    for (const op of options.ops) {
      const c = makeCase(pg, op, bytes);
      const times: number[] = [];
      let wrong = 0;
      for (let it = 0; it < options.warmup + options.iters; it++) {
        c.prepare?.();
        await barrierRanks(pg);
        const start = performance.now();
        await c.run();
        const ms = performance.now() - start;
        wrong += c.check();
        if (it >= options.warmup) {
          times.push(ms);
          options.onIteration?.(op, bytes, it - options.warmup);
        }
      }
      const slowest = await allGatherRanks(pg, Float32Array.from(times));
      const perIter = times.map((_, i) =>
        Math.max(...Array.from({ length: n }, (_, k) => slowest[k * times.length + i]!)),
      );
      const totals = await allReduceRanks(pg, new Float32Array([wrong]));
      const ms = median(perIter);
      const algbw = bytes / (ms / 1000) / 1e9;
      emit({
        op,
        bytes,
        ranks: n,
        median_ms: ms,
        algbw_gbps: algbw,
        busbw_gbps: algbw * busFactor(op, n),
        wrong: totals[0]!,
        iters: options.iters,
      });
    }
  }
  return records;
}
