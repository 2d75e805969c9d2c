import { describe, expect, it } from 'vitest';
import { UploadRingModel } from '../src/runtime/webgpu/upload-ring.js';

// Sizes in units of 1/12 of the ring, so that Dawn's arithmetic stays exact: 6 is half the ring.
const unit = 1024;
const ring = () => new UploadRingModel(12 * unit);

describe("the model of Dawn's upload ring", () => {
  it('fills the ring end to end, then refuses until a batch is released', () => {
    const r = ring();
    expect(r.hasPending).toBe(false);
    expect(r.tryAllocate(6 * unit)).toBe(true);
    expect(r.tryAllocate(6 * unit)).toBe(true);
    expect(r.tryAllocate(4)).toBe(false);
    expect(r.hasPending).toBe(true);
    const batch = r.seal()!;
    expect(r.hasPending).toBe(false); // carried by a submit, though not yet done
    expect(r.seal()).toBeNull(); // nothing new since
    r.release(batch);
    expect(r.usedBytes).toBe(0);
  });

  it('wraps to the start when the tail is too short, counting the skipped tail as used', () => {
    const r = ring();
    r.tryAllocate(5 * unit);
    const first = r.seal()!;
    r.tryAllocate(5 * unit); // [5, 10)
    r.release(first); // [0, 5) free, tail [10, 12) too short for 5
    expect(r.tryAllocate(5 * unit)).toBe(true); // at 0, with the 2-unit tail counted
    expect(r.usedBytes).toBe(12 * unit);
    expect(r.tryAllocate(4)).toBe(false);
  });

  it('refuses what byte counting would allow: ReduceScatter-like 2, 2, 1.33 MiB chunks', () => {
    // 6 + 4 units in flight, the first released: 4 units in flight, but the free space is split into a
    // 6-unit front and a 2-unit tail, so a 6-unit write fits (at the front) and a 7-unit one would not.
    const r = ring();
    r.tryAllocate(6 * unit);
    const a = r.seal()!;
    r.tryAllocate(4 * unit); // [6, 10)
    r.seal();
    r.release(a);
    expect(r.usedBytes).toBe(4 * unit);
    expect(r.tryAllocate(7 * unit)).toBe(false); // 4 + 7 <= 12 bytes-wise, yet no room in one piece
    expect(r.tryAllocate(6 * unit)).toBe(true); // at the front, tail counted: full
    expect(r.tryAllocate(1)).toBe(false);
  });

  it('releases in submit order, batch by batch', () => {
    const r = ring();
    r.tryAllocate(unit);
    const a = r.seal()!;
    r.tryAllocate(2 * unit);
    const b = r.seal()!;
    r.tryAllocate(3 * unit); // still pending: no submit has carried it
    r.release(a);
    expect(r.usedBytes).toBe(5 * unit);
    r.release(b);
    expect(r.usedBytes).toBe(3 * unit);
    r.release(r.seal()!);
    expect(r.usedBytes).toBe(0);
  });
});
