/**
 * Lines that Dawn and the Vulkan loader write straight to file descriptor 2: hidden unless --verbose.
 * bin/webgpu-parallel.js filters the CLI's own stderr with these; the launcher filters its ranks' with them.
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
