/** One line of `npm run bench -- --json`: every suite writes these, and the table prints them. */
export interface BenchRecord {
  readonly suite: 'matmul' | 'dispatch' | 'collective' | 'pipeline';
  readonly name: string;
  readonly backend?: string;
  readonly adapter?: string;
  readonly [field: string]: unknown;
}

export type BenchSink = (record: BenchRecord) => void;

/** Median of the samples (the mean of the middle two for an even count). */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `body` `warmup` times untimed, then `runs` times timed (ms, host clock); returns the median. */
export async function timeMedian(body: () => Promise<unknown>, runs = 5, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await body();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await body();
    samples.push(performance.now() - start);
  }
  return median(samples);
}
