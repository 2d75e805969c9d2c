import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { MAX_DELAY_MS, PollPolicy, pollStats, SPIN_MS } from '../src/runtime/webgpu/dawn-poll.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';
const root = fileURLToPath(new URL('..', import.meta.url));

describe('the poll backoff policy', () => {
  it('runs ticks at once while GPU activity is recent, then puts them off by a tenth of the idle time', () => {
    let now = 0;
    const policy = new PollPolicy(() => now);
    policy.activity();
    const step = SPIN_MS / 8; // back-to-back ticks: the loop has nothing else to run
    for (let k = 1; k < 8; k++) {
      now += step;
      expect(policy.delayMs()).toBe(0);
    }
    now += step;
    expect(policy.delayMs()).toBe(SPIN_MS / 10);
    while (now < 20) {
      now += step;
      policy.delayMs();
    }
    now += step;
    expect(policy.delayMs()).toBe(MAX_DELAY_MS); // capped: a timer's worth
    policy.activity(); // a settlement or a new call
    now += step;
    expect(policy.delayMs()).toBe(0);
    expect(policy.deferred).toBe(policy.ticks - 8); // all but the 7 early ticks and the last
  });

  it('polls at once after the loop ran other work, however idle the GPU has been', () => {
    let now = 0;
    const policy = new PollPolicy(() => now);
    policy.activity();
    now += 10 * SPIN_MS;
    expect(policy.delayMs()).toBe(0); // the first tick after a long gap
    now += SPIN_MS / 10;
    expect(policy.delayMs()).toBeGreaterThan(0); // then back-to-back: spinning
    now += 2 * SPIN_MS; // the host ran a chunk's sum
    expect(policy.delayMs()).toBe(0);
  });

  it('runs every tick at once while inactive (a real GPU in auto mode)', () => {
    let now = 0;
    const policy = new PollPolicy(() => now, false);
    policy.activity();
    for (let i = 0; i < 100; i++) {
      now += SPIN_MS / 10;
      expect(policy.delayMs()).toBe(0);
    }
    policy.active = true;
    now += SPIN_MS / 10;
    expect(policy.delayMs()).toBeGreaterThan(0);
  });
});

describe.skipIf(!available)("Dawn's poll loop under the backoff", () => {
  let group: DeviceGroup;
  beforeAll(async () => {
    group = await openTestGroup(1);
  });
  afterAll(() => group?.destroy());

  it("recognises Dawn's ticks, and GPU work still completes with the right values", async () => {
    const device = group.devices[0]!;
    const before = pollStats()!;
    expect(before).not.toBeNull();
    // Auto mode: on with a software adapter (as on CI's lavapipe), off on a real GPU.
    if (!process.env.WEBGPU_PARALLEL_DAWN_POLL) expect(before.active).toBe(device.adapter.isSoftware);
    const n = 256;
    const a = device.upload(
      Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3),
      [n, n],
      'a',
    );
    const product = await device.kernels.matmul(a, a);
    await device.sync();
    const back = await product.read();
    // Row 0 of A·A against the same sum on the host.
    for (const j of [0, 1, n - 1]) {
      let want = 0;
      for (let k = 0; k < n; k++) want += ((k % 7) - 3) * (((k * n + j) % 7) - 3);
      expect(back[j]).toBe(want);
    }
    // If a Dawn update stopped polling through setImmediate, this says the backoff no longer applies.
    expect(pollStats()!.ticks).toBeGreaterThan(before.ticks);
    a.free();
    product.free();
  });

  it('leaves every other setImmediate as it was: run at once, in order, promisified too', async () => {
    const order: string[] = [];
    const timer = setTimeout(() => order.push('timer'), 0);
    setImmediate(() => order.push('immediate'));
    setImmediate((x: string) => order.push(x), 'argument');
    await promisify(setImmediate)();
    await new Promise((resolve) => setTimeout(resolve, 5));
    clearTimeout(timer);
    expect(order.filter((x) => x !== 'timer')).toEqual(['immediate', 'argument']);
  });

  it('is left out with WEBGPU_PARALLEL_DAWN_POLL=spin, and on from the start with backoff', () => {
    const script = `
      const { requestAdapter } = await import('./src/runtime/webgpu/dawn.ts');
      const { pollStats } = await import('./src/runtime/webgpu/dawn-poll.ts');
      await requestAdapter();
      console.log(JSON.stringify(pollStats()));`;
    const run = (poll: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, WEBGPU_PARALLEL_DAWN_POLL: poll },
        timeout: 30_000,
      }).stdout.trim();
    expect(run('spin')).toBe('null');
    expect(run('backoff')).toMatch(/^\{"ticks":\d+,"deferred":\d+,"active":true\}$/);
  });
});
