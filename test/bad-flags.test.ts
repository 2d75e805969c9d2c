import { describe, expect, it } from 'vitest';
import { DeviceGroup } from '../src/runtime/device-group.js';
import { cli, ensureBuilt, expectNoStack } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/** A backend or adapter that does not exist is refused with the valid choices, never run on another. */
const webgpu = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

describe('unknown backends and adapters', () => {
  it('DeviceGroup.open refuses an unknown backend, listing the valid ones', async () => {
    await expect(DeviceGroup.open({ count: 1, backend: 'nonsense' as never })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "unknown backend 'nonsense'",
      fix: 'use one of auto, webgpu, gpujs, cpu',
    });
  });

  it.skipIf(!webgpu)(
    'an adapter name that matches none is NO_ADAPTER listing the real ones, whatever the backend',
    async () => {
      for (const backend of ['auto', 'webgpu', 'gpujs'] as const) {
        await expect(
          DeviceGroup.open({ count: 1, backend, adapters: ['no-such-gpu'] }),
        ).rejects.toMatchObject({
          code: 'NO_ADAPTER',
          message: "no WebGPU adapter matches 'no-such-gpu'",
          fix: expect.stringMatching(/^pick one of: \S/),
        });
      }
    },
  );

  it('the CLI refuses --backend nonsense and --adapter nonsense with exit 1 and the choices', () => {
    ensureBuilt();
    const backend = cli('run', 'examples/seed-fits.json', '--backend', 'nonsense', '--no-progress');
    expect(backend.status).toBe(1);
    expect(backend.stderr).toContain("'nonsense' is not a backend; use one of auto, webgpu, gpujs, cpu");
    expectNoStack(backend);
    const generate = cli('generate', 'nowhere', '--prompt-ids', '1', '--backend', 'nonsense');
    expect(generate.status).toBe(1);
    expect(generate.stderr).toContain("'nonsense' is not a backend");
    const adapter = cli('run', 'examples/seed-fits.json', '--adapter', 'nonsense', '--no-progress');
    expect(adapter.status).toBe(1);
    expect(adapter.stderr).toContain("no WebGPU adapter matches 'nonsense'");
    expect(adapter.stderr).toMatch(/pick one of: |no WebGPU adapter/);
    expectNoStack(adapter);
  }, 60_000);
});
