#!/usr/bin/env node
// Runs the CLI in a child process so that Dawn's and the Vulkan loader's messages, which native code
// writes straight to file descriptor 2 outside the calls the library quiets, can be filtered out of what
// the user sees (kept with --verbose).
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
// Dawn logs as `Warning: ...` with an indented source location after it; the loader as `[Loader Message]`.
import { isNativeNoise } from '../dist/src/runtime/webgpu/native-noise.js';

const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const args = process.argv.slice(2);
const verbose = args.includes('--verbose') || args.includes('-v');
// Before the child exists: a signal that came between its start and our listening would kill us the
// default way, leaving it running.
let child;
let early;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child) child.kill(signal);
    else early = signal;
  });
}
child = spawn(process.execPath, [main, ...args], {
  // The IPC channel closes when this process dies, however it dies (SIGKILL too): the child then exits.
  stdio: ['inherit', 'inherit', verbose ? 'inherit' : 'pipe', 'ipc'],
  // Our pid, so that the child can tell it has lost us even if that happened before it started looking;
  // and the child's stderr is a pipe here, so it draws its progress bar where ours is a terminal.
  env: {
    ...process.env,
    WEBGPU_PARALLEL_WRAPPER_PID: String(process.pid),
    // The library keeps Dawn's warnings off fd 2 itself (native-stderr.ts): --verbose asks for them.
    ...(verbose ? { WEBGPU_PARALLEL_NATIVE_LOG: '1' } : {}),
    ...(process.stderr.isTTY ? { WEBGPU_PARALLEL_STDERR_TTY: String(process.stderr.columns ?? 80) } : {}),
  },
});
if (early) child.kill(early);
if (!verbose) {
  let pending = '';
  let dropping = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const noise = isNativeNoise(line) || (dropping && line.trim() === '');
      dropping = noise;
      if (!noise) process.stderr.write(`${line}\n`);
    }
    // A progress bar redraws its line in place (carriage returns, escapes) and never ends it: pass it on.
    if (pending.includes('\r') || pending.includes('\u001b')) {
      process.stderr.write(pending);
      pending = '';
    }
  });
  child.stderr.on('end', () => {
    if (pending && !isNativeNoise(pending)) process.stderr.write(pending);
  });
}
child.on('exit', (code, signal) => {
  // As a shell reports a child killed by a signal: 128 + its number (SIGINT 130, SIGTERM 143, SIGABRT 134).
  process.exitCode = code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1);
});
