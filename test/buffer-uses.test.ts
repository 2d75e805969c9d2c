import { describe, expect, it } from 'vitest';
import { BufferUses } from '../src/runtime/webgpu/buffer-uses.js';
import { writableBindings } from '../src/runtime/webgpu/pipeline-cache.js';

/** The tracker only keys on buffer identity. */
const buffer = () => ({}) as GPUBuffer;

describe('BufferUses (which writes Dawn copies straight into a buffer)', () => {
  it('writes directly into a buffer no submit has touched', () => {
    expect(new BufferUses().writesDirectly(buffer())).toBe(true);
  });

  it('counts a buffer a submit reads as in use until that submit, or a later one, is known complete', () => {
    const uses = new BufferUses();
    const a = buffer();
    const first = uses.submit([{ buffer: a, writes: false }]);
    const second = uses.submit([]);
    expect(uses.writesDirectly(a)).toBe(false);
    uses.completedThrough(first - 1);
    expect(uses.writesDirectly(a)).toBe(false);
    uses.completedThrough(second);
    expect(uses.writesDirectly(a)).toBe(true);
    // Completion reported out of order never moves it back.
    uses.completedThrough(first);
    expect(uses.writesDirectly(a)).toBe(true);
  });

  it('never writes directly into a buffer the GPU has written, even once it is idle', () => {
    const uses = new BufferUses();
    const a = buffer();
    const b = buffer();
    const serial = uses.submit([
      { buffer: a, writes: true },
      { buffer: b, writes: false },
    ]);
    uses.completedThrough(serial);
    expect(uses.writesDirectly(a)).toBe(false);
    expect(uses.writesDirectly(b)).toBe(true);
  });

  it('counts a write queued through the ring as the next submit writing the buffer', () => {
    const uses = new BufferUses();
    const a = buffer();
    uses.writtenByNextSubmit(a);
    expect(uses.pending).toBe(1);
    uses.completedThrough(uses.submit([]));
    expect(uses.writesDirectly(a)).toBe(false);
  });
});

describe('writableBindings', () => {
  it('finds the read_write storage bindings of a shader, not the read-only ones or uniforms', () => {
    const code = `
      @group(0) @binding(0) var<uniform> params: Params;
      @group(0) @binding(1) var<storage, read> a: array<f32>;
      @group(0) @binding(2) var<storage,read_write> out: array<f32>;
      @group(0) @binding(3)
      var<storage, read_write> c: array<f32>;`;
    expect([...writableBindings(code)].sort()).toEqual([2, 3]);
  });
});
