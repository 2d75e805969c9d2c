import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { webGpuAvailable } from './support/devices.js';

/**
 * Native writes to file descriptor 2 around the calls that make them: Dawn's warnings stay out of a library
 * user's stderr unless WEBGPU_PARALLEL_NATIVE_LOG=1, and anything else native code wrote still arrives. Each
 * case runs in a child process of its own, whose stderr is what a user would see (the built package, as a
 * consumer imports it).
 */
const DIST = resolve(import.meta.dirname, '../dist/src');
const available = await webGpuAvailable();

function child(script: string, env: Record<string, string> = {}) {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, WEBGPU_PARALLEL_NATIVE_LOG: '', ...env },
    timeout: 60_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return run;
}

// fs.writeSync(2) goes to whatever file descriptor 2 is at that moment, as a native fprintf(stderr) does.
const WRITES = `
import { writeSync } from 'node:fs';
import { quietNative } from '${DIST}/runtime/webgpu/native-stderr.js';
const value = quietNative(() => {
  writeSync(2, 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced\\n');
  writeSync(2, 'a line that is no noise\\n');
  return 42;
});
process.stdout.write(String(value));
process.stderr.write('after\\n');
`;

describe('native stderr', () => {
  it('drops the noise written during a call, passes the rest on, and gives stderr back', () => {
    const run = child(WRITES);
    expect(run.stdout).toBe('42');
    expect(run.stderr).toBe('a line that is no noise\nafter\n');
  });

  it('WEBGPU_PARALLEL_NATIVE_LOG=1 leaves file descriptor 2 alone', () => {
    const run = child(WRITES, { WEBGPU_PARALLEL_NATIVE_LOG: '1' });
    expect(run.stderr).toBe(
      'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced\na line that is no noise\nafter\n',
    );
  });

  it.skipIf(!available)("opening WebGPU devices prints none of Dawn's warnings, unless asked", () => {
    const open = `
      import { DeviceGroup } from '${DIST}/index.js';
      const group = await DeviceGroup.open({ count: 2, backend: 'webgpu' });
      process.stdout.write(group.devices[0].adapter.name);
      group.destroy();
    `;
    const quiet = child(open);
    expect(quiet.stderr).toBe('');
    const asked = child(open, { WEBGPU_PARALLEL_NATIVE_LOG: '1' });
    // lavapipe reports limits Dawn lowers, with a warning per adapter request; a GPU may report none.
    if (/llvmpipe/.test(asked.stdout)) expect(asked.stderr).toMatch(/artificially reduced/);
  });
});
