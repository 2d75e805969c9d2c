#!/usr/bin/env node
// Runs the CLI in a child process so that Dawn's and the Vulkan loader's messages, which native code
// writes straight to file descriptor 2, can be filtered out of what the user sees (kept with --verbose).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const args = process.argv.slice(2);
const verbose = args.includes('--verbose') || args.includes('-v');
// Dawn logs as `Warning: ...` with an indented source location after it; the loader as `[Loader Message]`.
const NATIVE_NOISE = [
  /^Warning: /,
  /third_party\/dawn\//,
  /^(WARNING|INFO|ERROR): \[Loader Message\]/,
  /^MESA: /,
];

const child = spawn(process.execPath, [main, ...args], {
  stdio: ['inherit', 'inherit', verbose ? 'inherit' : 'pipe'],
});
if (!verbose) {
  let dropping = false;
  createInterface({ input: child.stderr }).on('line', (line) => {
    const noise = NATIVE_NOISE.some((re) => re.test(line)) || (dropping && line.trim() === '');
    dropping = noise;
    if (!noise) process.stderr.write(`${line}\n`);
  });
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 128 + 1 : 1);
});
