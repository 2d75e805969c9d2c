import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceGroup } from '../src/runtime/device-group.js';
import { PollPolicy, pollStats, SPIN_MS } from '../src/runtime/webgpu/dawn-poll.js';
import { openTestGroup, TEST_BACKEND, webGpuAvailable } from './support/devices.js';

const available = (await webGpuAvailable()) && TEST_BACKEND === 'webgpu';
const root = fileURLToPath(new URL('..', import.meta.url));

describe('the poll backoff policy', () => {
  it('spins while GPU activity is recent, then defers ticks to a timer', () => {
    let now = 100;
    const policy = new PollPolicy(() => now);
    expect(policy.spinNow()).toBe(false); // no activity yet
    policy.activity();
    expect(policy.spinNow()).toBe(true);
    now += SPIN_MS / 2;
    expect(policy.spinNow()).toBe(true);
    now += SPIN_MS;
    expect(policy.spinNow()).toBe(false);
    policy.activity(); // a settlement or a new call starts a spin window again
    expect(policy.spinNow()).toBe(true);
    expect({ ticks: policy.ticks, deferred: policy.deferred }).toEqual({ ticks: 5, deferred: 2 });
  });

  it('runs every tick at once while inactive (a real GPU in auto mode)', () => {
    let now = 0;
    const policy = new PollPolicy(() => now, false);
    policy.activity();
    now += 100 * SPIN_MS;
    expect(policy.spinNow()).toBe(true);
    policy.active = true;
    expect(policy.spinNow()).toBe(false);
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
