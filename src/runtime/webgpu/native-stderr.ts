import { closeSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNativeNoise } from './native-noise.js';

interface Libc {
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  close(fd: number): number;
}

const LIBC: Partial<Record<NodeJS.Platform, string>> = { linux: 'libc.so.6', darwin: 'libSystem.B.dylib' };

/** libc's descriptor calls through koffi, or null where either cannot be loaded (fd 2 is then left alone). */
function loadLibc(): Libc | null {
  const name = LIBC[process.platform];
  if (!name) return null;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load(name);
    return {
      dup: lib.func('int dup(int)'),
      dup2: lib.func('int dup2(int, int)'),
      close: lib.func('int close(int)'),
    };
  } catch {
    return null;
  }
}

let libc: Libc | null | undefined;

/**
 * Runs `call` (synchronous: Dawn prints inside `create` and `requestAdapter` before they return) with file
 * descriptor 2 on a scratch file, then passes what native code wrote there on to process.stderr, less the
 * lines known to be noise. Dawn writes its warnings ("maxDynamicUniformBuffersPerPipelineLayout
 * artificially reduced ...", two lines per adapter request on lavapipe) with fprintf from native code and
 * offers no log level, and Node cannot point fd 2 elsewhere: koffi (an FFI with prebuilt binaries, no
 * compiler needed) calls libc's dup and dup2 for it. JavaScript cannot run during the call, so only other
 * native threads' writes in that window pass through the file, and those that are not noise still arrive.
 * WEBGPU_PARALLEL_NATIVE_LOG=1 leaves fd 2 alone.
 */
export function quietNative<T>(call: () => T, env: NodeJS.ProcessEnv = process.env): T {
  if (env.WEBGPU_PARALLEL_NATIVE_LOG === '1') return call();
  // Null (no koffi or libc here) is an answer too: loaded once either way.
  if (libc === undefined) libc = loadLibc();
  const scratch = libc ? openScratch() : null;
  if (!libc || scratch === null) return call();
  const saved = libc.dup(2);
  if (saved < 0 || libc.dup2(scratch, 2) < 0) {
    if (saved >= 0) libc.close(saved);
    closeSync(scratch);
    return call();
  }
  try {
    return call();
  } finally {
    libc.dup2(saved, 2);
    libc.close(saved);
    passOn(scratch);
  }
}

/** An unlinked temporary file open for reading and writing, or null if none can be made. */
function openScratch(): number | null {
  const path = join(tmpdir(), `webgpu-parallel-stderr-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const fd = openSync(path, 'w+', 0o600);
    unlinkSync(path);
    return fd;
  } catch {
    return null;
  }
}

function passOn(scratch: number): void {
  try {
    const size = fstatSync(scratch).size;
    if (size === 0) return;
    const bytes = Buffer.alloc(size);
    readSync(scratch, bytes, 0, size, 0);
    const kept = bytes
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '' && !isNativeNoise(line));
    if (kept.length > 0) process.stderr.write(`${kept.join('\n')}\n`);
  } finally {
    closeSync(scratch);
  }
}
