import type { Device } from '../runtime/device.js';
import type { HostArray, Tensor } from '../runtime/tensor.js';
import type { Run } from './box.js';
import type { CollectiveContext } from './context.js';
import type { HostLease } from './transport.js';

/**
 * Elements per chunk of a host sum whose writes go through Dawn's upload ring (2 MiB of f32; copies use
 * larger ones, see streamed-copy.ts): 1 MiB chunks left the loop bound by per-chunk submit/map round trips
 * (~0.1 ms per source read), 4 MiB ones by the unoverlapped first read and last write, and by writes that
 * outgrow Dawn's 4 MiB upload ring (16 MiB over 3 lavapipe devices: ~8-10 ms at 2 MiB; ~12 ms at 1 MiB;
 * 40-150 ms with 4-8 MiB chunks).
 */
export const RING_CHUNK_ELEMENTS = 512 * 1024;

/**
 * Elements per chunk of a host sum whose every destination Dawn writes directly (see BufferUses): no ring
 * to fit, so 4 MiB chunks, half the submits and maps of 2 MiB ones, the first of 1 MiB so that the host
 * starts summing after a short read. 16 MiB over 3 lavapipe devices, interleaved in one process, three
 * runs: 2 MiB chunks 8.25, 7.72, 8.42 ms; 4 MiB from 1 MiB 7.12, 7.32, 7.72 ms (4 MiB throughout 7.7-8.0,
 * 8 MiB from 1 MiB 7.8-8.3).
 */
export const DIRECT_CHUNK_ELEMENTS = 1024 * 1024;
export const FIRST_DIRECT_CHUNK_ELEMENTS = 256 * 1024;

/** Chunks whose reads are in flight while one is used; deeper read-ahead measured no faster on 2 cores. */
export const READ_AHEAD = 1;

export interface Chunk {
  readonly from: number;
  readonly count: number;
}

/**
 * Where each chunk of a `total`-element sequence starts and how long it is: `first` elements, then twice
 * as many each time up to `size`.
 */
export function chunksOf(total: number, size: number, first = size): Chunk[] {
  const chunks: Chunk[] = [];
  let next = Math.min(first, size);
  for (let from = 0; from < total; from += next, next = Math.min(size, next * 2)) {
    chunks.push({ from, count: Math.min(next, total - from) });
  }
  return chunks;
}

/** The part of a run list covering elements [from, from + count) of the sequence it enumerates. */
export function sliceRuns(runs: readonly Run[], from: number, count: number): Run[] {
  const out: Run[] = [];
  let seen = 0;
  for (const run of runs) {
    const lo = Math.max(from, seen);
    const hi = Math.min(from + count, seen + run.count);
    if (lo < hi) out.push({ offset: run.offset + (lo - seen), count: hi - lo });
    seen += run.count;
    if (seen >= from + count) break;
  }
  return out;
}

/** Writes packed host values into the runs of a tensor, consuming `data` in order. */
export function writeRuns(
  ctx: CollectiveContext,
  tensor: Tensor,
  data: HostArray,
  runs: readonly Run[],
): void {
  let at = 0;
  for (const run of runs) {
    ctx.transport(tensor.device).write(tensor, data.subarray(at, at + run.count), run.offset);
    at += run.count;
  }
}

/**
 * The devices a transfer writes to but never reads from. Dawn keeps queued writes in its 4 MiB upload ring
 * until the device's next submit; the reads' submits carry a source's writes, but a device that only
 * receives needs a flush after each chunk, or its ring fills after two chunks and every later write takes
 * the slower staging path.
 */
export function receiveOnly(writtenTo: readonly Tensor[], readFrom: readonly Tensor[]): Device[] {
  const read = new Set(readFrom.map((t) => t.device));
  return [...new Set(writtenTo.map((t) => t.device))].filter((d) => !read.has(d));
}

/**
 * Reads several runs lists (one per tensor) at once; if any read fails, the others' leases are released
 * before the failure is passed on, so no staging buffer stays mapped and taken.
 */
export async function readAll(
  ctx: CollectiveContext,
  reads: readonly { tensor: Tensor; runs: readonly Run[] }[],
): Promise<HostLease[]> {
  const settled = await Promise.allSettled(
    reads.map(({ tensor, runs }) => ctx.transport(tensor.device).read(tensor, runs)),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<HostLease>).value);
  for (const s of settled) if (s.status === 'fulfilled') s.value.release();
  throw failed.reason;
}

/**
 * Streams chunks through the host: the reads of the next READ_AHEAD chunks are in flight while `use` works
 * on the current one, so device copies and the host loop overlap. `use` owns the leases it is given and
 * releases them; after a failure, the leases read ahead are released here.
 */
export async function streamChunks<C>(
  chunks: readonly C[],
  read: (chunk: C) => Promise<HostLease[]>,
  use: (chunk: C, leases: HostLease[]) => void,
): Promise<void> {
  const pending: Promise<HostLease[]>[] = [];
  let issued = 0;
  const fill = () => {
    while (issued < chunks.length && pending.length < READ_AHEAD) pending.push(read(chunks[issued++]!));
  };
  try {
    for (const chunk of chunks) {
      fill();
      const current = pending.shift()!;
      fill();
      use(chunk, await current);
    }
  } catch (error) {
    for (const p of pending) for (const lease of await p.catch(() => [])) lease.release();
    throw error;
  }
}
