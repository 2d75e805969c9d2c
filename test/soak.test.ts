import { beforeAll, describe, expect, it } from 'vitest';
import { runSoak } from '../bench/soak.js';
import { ensureBuilt } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * A long-lived process opens, uses and destroys device groups again and again: every device it destroyed
 * must be collectable (Dawn held each one through its error handler, and the exit then took 7 s after 40
 * cycles, 28 s after 150), and the process must end soon after its work. RSS over 500 cycles is the
 * bench's (`--suites soak`): too noisy for a test on a shared machine.
 */
const available = await webGpuAvailable();

beforeAll(() => ensureBuilt(), 120_000);

describe.skipIf(!available)(`open/work/destroy cycles on ${TEST_BACKEND}`, () => {
  it('gives every destroyed device back to the collector and exits within seconds of its work', async () => {
    const backend = TEST_BACKEND === 'gpujs' ? 'gpujs' : 'webgpu';
    const r = await runSoak({ cycles: 40, backend, work: 'kernels', timeoutMs: 120_000 });
    expect(r.made).toBe(120);
    // The last group's devices may still be in flight to the finalizer when the child reports.
    expect(r.collected).toBeGreaterThanOrEqual(r.made - 3);
    expect(r.exitMs).toBeLessThan(3000);
  }, 150_000);
});
