import { readFileSync } from 'node:fs';

/**
 * Milliseconds the calling thread has spent on a CPU, or null where the OS does not say (Linux reports it
 * per thread, in ns, in /proc/thread-self/schedstat). Process-wide CPU time would not do: on a software
 * adapter the driver's worker threads, the "GPU", are part of the process.
 */
export function threadCpuMs(): number | null {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}
