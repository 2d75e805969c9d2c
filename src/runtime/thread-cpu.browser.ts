/** The page's twin of thread-cpu.ts: a browser does not tell a thread its own CPU time. */
export function threadCpuMs(): number | null {
  return null;
}
