/** In a page there is no native code writing to a file descriptor: the call runs as it is. */
export function quietNative<T>(call: () => T): T {
  return call();
}
