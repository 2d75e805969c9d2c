import { describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/** A group destroyed while its devices still work: every rejection is the library's, naming device and op. */
const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';

describe.skipIf(!available)('destroying a group under work', () => {
  it('a pending read fails with DESTROYED naming the device and the read', async () => {
    const group = await openTestGroup(1);
    const d = group.devices[0]!;
    const x = d.upload(new Float32Array(1 << 16).fill(1), [256, 256], 'x');
    const y = await d.kernels.matmul(x, x);
    const read = y.read();
    group.destroy();
    await expect(read).rejects.toMatchObject({
      code: 'DESTROYED',
      message: "webgpu:0 was destroyed during read of 'matmul'",
    });
  });

  it('1 to 50 ms into a chain of kernels and reads: finished, or DESTROYED naming the device', async () => {
    for (const delay of [0, 1, 5, 20, 50]) {
      const group = await openTestGroup(2);
      const work = group.devices.map(async (d) => {
        let x = d.upload(new Float32Array(128 * 128).fill(0.01), [128, 128], 'x');
        for (let i = 0; i < 20; i++) {
          const next = await d.kernels.matmul(x, x);
          await next.read();
          x.free();
          x = next;
        }
        return x;
      });
      await new Promise((r) => setTimeout(r, delay));
      group.destroy();
      for (const [r, outcome] of (await Promise.allSettled(work)).entries()) {
        if (outcome.status === 'fulfilled') continue;
        const error = outcome.reason as Error;
        expect(isParallelError(error) && ['DESTROYED', 'DEVICE_LOST'].includes(error.code)).toBe(true);
        expect(error.message).toContain(`webgpu:${r}`);
        expect(error.message.length).toBeGreaterThan(`webgpu:${r} was destroyed`.length - 1);
      }
    }
  }, 60_000);
});
