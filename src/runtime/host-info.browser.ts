/** The page's twin of host-info.ts: what the browser says of the machine. */
export function hostCores(): number {
  return navigator.hardwareConcurrency || 1;
}

/** A page is not told the CPU's architecture; the reference device names the browser instead. */
export function hostArchitecture(): string {
  return 'browser';
}

/**
 * A page is told the device's memory only roughly (`navigator.deviceMemory`, in GiB, where it exists); a
 * tab's heap is assumed at 2 GiB, V8's usual limit for one.
 */
export function hostMemoryLimits(): { buffersBytes: number; heapBytes: number } {
  const gib = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 4;
  return { buffersBytes: gib * 2 ** 30, heapBytes: 2 * 2 ** 30 };
}
