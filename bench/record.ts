import { Bench } from 'tinybench';

/** One line of `npm run bench -- --json`: every suite writes these, and the table prints them. */
export interface BenchRecord {
  readonly suite:
    | 'matmul'
    | 'dispatch'
    | 'collective'
    | 'pipeline'
    | 'model'
    | 'moe'
    | 'distributed'
    | 'variants'
    | 'soak'
    | 'browser';
  readonly name: string;
  readonly backend?: string;
  readonly adapter?: string;
  readonly [field: string]: unknown;
}

export type BenchSink = (record: BenchRecord) => void;

/**
 * Times `body` with tinybench: `warmup` untimed calls, then at least `runs` timed ones; returns the median
 * in milliseconds (host clock, each call awaited to completion).
 */
export async function timeMedian(
  name: string,
  body: () => Promise<unknown>,
  runs = 5,
  warmup = 1,
): Promise<number> {
  const bench = new Bench({
    iterations: runs,
    warmupIterations: warmup,
    time: 0,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, body);
  await bench.run();
  const result = bench.tasks[0]!.result;
  if (result.state !== 'completed') throw new Error(`benchmark ${name} did not complete (${result.state})`);
  return result.latency.p50;
}

export { median } from '../src/stats.js';
