import { arch, availableParallelism, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

/** How many CPU cores this process may run on (what logical devices on a software adapter share). */
export function hostCores(): number {
  return availableParallelism();
}

/** The host CPU's architecture (x64, arm64, ...), for the CPU reference device's adapter summary. */
export function hostArchitecture(): string {
  return arch();
}

/**
 * What one process may hold: typed arrays live outside the JS heap and are bounded by the machine's memory,
 * plain objects by the heap's limit.
 */
export function hostMemoryLimits(): { buffersBytes: number; heapBytes: number } {
  return { buffersBytes: totalmem(), heapBytes: getHeapStatistics().heap_size_limit };
}
