import { describe, expect, it } from 'vitest';
import { LossRace } from '../src/runtime/webgpu/loss-race.js';

describe('LossRace', () => {
  it('passes a settled wait through and holds nothing after it', async () => {
    const race = new LossRace();
    const waits = Array.from({ length: 1000 }, (_, i) => race.race(Promise.resolve(i)));
    expect(race.pendingCount).toBe(1000);
    expect((await Promise.all(waits)).at(-1)).toBe(999);
    // The leak this replaces: a reaction per wait kept on the device's lost promise until the device dies.
    expect(race.pendingCount).toBe(0);
    await expect(race.race(Promise.reject(new Error('map failed')))).rejects.toThrow('map failed');
    expect(race.pendingCount).toBe(0);
  });

  it('fails pending and later waits with the loss, even if their work never settles', async () => {
    const race = new LossRace();
    const never = new Promise<number>(() => {});
    const pending = race.race(never);
    const lost = new Error('device lost');
    race.lose(lost);
    await expect(pending).rejects.toBe(lost);
    await expect(race.race(Promise.resolve(1))).rejects.toBe(lost);
    expect(race.pendingCount).toBe(0);
  });
});
