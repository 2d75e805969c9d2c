/**
 * Lines that Dawn and the Vulkan loader write straight to file descriptor 2. The library keeps them out of
 * a process's stderr around the calls that print them (native-stderr.ts); the CLI's wrapper
 * (bin/webgpu-parallel.js) and the launcher, for its ranks, filter whatever else reaches stderr with them.
 * --verbose, or WEBGPU_PARALLEL_NATIVE_LOG=1 for library users, shows them.
 */
export const NATIVE_NOISE: readonly RegExp[] = [
  /^Warning: /,
  /third_party\/dawn\//,
  /^(WARNING|INFO|ERROR): \[Loader Message\]/,
  /^MESA: /,
];

export function isNativeNoise(line: string): boolean {
  return NATIVE_NOISE.some((re) => re.test(line));
}
