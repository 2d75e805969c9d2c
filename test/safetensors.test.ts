import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isParallelError } from '../src/errors.js';
import { Checkpoint } from '../src/models/checkpoint/checkpoint.js';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  SafetensorsFile,
  writeSafetensors,
} from '../src/models/checkpoint/safetensors.js';
import { parseLlamaConfig, toHfConfig } from '../src/models/llama-config.js';
import {
  llamaParameterShapes,
  preset,
  presetNames,
  randomLlamaWeights,
  writeRandomCheckpoint,
} from '../src/models/presets.js';
import { sliceOf } from '../src/parallel/weight-reader.js';
import { makeRandom } from '../src/random.js';

const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Values over many magnitudes, so rounding, subnormals and large values all get exercised. */
function values(count: number, seed: number): Float32Array {
  const random = makeRandom(seed);
  return Float32Array.from({ length: count }, () => (random() - 0.5) * 2 ** Math.floor(random() * 40 - 28));
}

const through = (data: Float32Array, dtype: 'F32' | 'F16' | 'BF16') =>
  dtype === 'F32'
    ? data
    : data.map((v) => (dtype === 'F16' ? f16ToF32(f32ToF16(v)) : bf16ToF32(f32ToBf16(v))));

/** Bit-exact equality, reporting the first differing element: fast on large arrays, unlike toEqual. */
function expectSame(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const at = a.findIndex((bits, i) => bits !== b[i]);
  expect(at === -1 ? null : { at, got: got[at], want: want[at] }).toBeNull();
}

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

describe('safetensors files', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`round-trips ${dtype} exactly as the converters quantize, with metadata and an aligned header`, () => {
      const path = join(dir, `round-${dtype}.safetensors`);
      const b = values(12, 1);
      const a = values(35, 2);
      writeSafetensors(
        path,
        { b: { dtype, shape: [3, 4], data: b }, a: { dtype, shape: [5, 7], data: a } },
        {
          format: 'pt',
        },
      );
      const file = SafetensorsFile.open(path);
      expect(file.metadata).toEqual({ format: 'pt' });
      expect(file.names().sort()).toEqual(['a', 'b']);
      expect(file.info('a')).toEqual({ dtype, shape: [5, 7], byteLength: 35 * (dtype === 'F32' ? 4 : 2) });
      expectSame(file.readF32('a'), through(a, dtype));
      expectSame(file.readF32('b'), through(b, dtype));
      file.close();
      const bytes = readFileSync(path);
      expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString());
      // Sorted-name layout: 'a' first.
      expect(header.a.data_offsets[0]).toBe(0);
      expect(header.b.data_offsets[0]).toBe(header.a.data_offsets[1]);
      expect(existsSync(`${path}.tmp-${process.pid}`)).toBe(false);
    });
  }

  const cases: Array<{ shape: number[]; dim: number; start: number; length: number }> = [
    { shape: [7, 5], dim: 0, start: 2, length: 3 },
    { shape: [7, 5], dim: 1, start: 1, length: 3 },
    { shape: [7, 5], dim: 1, start: 0, length: 5 },
    { shape: [4, 6, 3], dim: 0, start: 1, length: 2 },
    { shape: [4, 6, 3], dim: 1, start: 2, length: 3 },
    { shape: [4, 6, 3], dim: 2, start: 1, length: 1 },
    // Strided rows gathered in several 1 MiB blocks.
    { shape: [3000, 200], dim: 1, start: 50, length: 30 },
    // Runs long enough to be read one by one.
    { shape: [3, 40000], dim: 1, start: 100, length: 20000 },
    { shape: [5, 0], dim: 0, start: 1, length: 2 },
  ];
  for (const dtype of ['F32', 'BF16'] as const) {
    for (const { shape, dim, start, length } of cases) {
      it(`reads ${dtype} [${shape}] slice dim ${dim} [${start}, +${length}) equal to the slice of the full read`, () => {
        const path = join(dir, `slice-${dtype}-${shape.join('x')}-${dim}-${start}.safetensors`);
        writeSafetensors(path, { t: { dtype, shape, data: values(count(shape), 3) } });
        const file = SafetensorsFile.open(path);
        const full = file.readF32('t');
        expectSame(file.readF32('t', { dim, start, length }), sliceOf(full, shape, { dim, start, length }));
        file.close();
      });
    }
  }

  it('reads only the bytes of a dim-0 slice, and at most the spanned rows of a column slice', () => {
    const path = join(dir, 'counted.safetensors');
    const shape = [64, 32];
    writeSafetensors(path, {
      before: { dtype: 'F32', shape: [100], data: values(100, 4) },
      t: { dtype: 'F16', shape, data: values(count(shape), 5) },
    });
    const file = SafetensorsFile.open(path);
    expect(file.bytesRead).toBe(0);
    file.readF32('t', { dim: 0, start: 10, length: 5 });
    expect(file.bytesRead).toBe(5 * 32 * 2);
    file.bytesRead = 0;
    file.readF32('t', { dim: 1, start: 4, length: 8 });
    expect(file.bytesRead).toBeGreaterThanOrEqual(64 * 8 * 2);
    expect(file.bytesRead).toBeLessThanOrEqual(64 * 32 * 2);
    file.close();
  });

  it('reads an F16 tensor larger than the 1 MiB conversion buffer', () => {
    const path = join(dir, 'big-f16.safetensors');
    const data = values(700_000, 6);
    writeSafetensors(path, { t: { dtype: 'F16', shape: [700_000], data } });
    const file = SafetensorsFile.open(path);
    expectSame(file.readF32('t'), through(data, 'F16'));
    file.close();
  });

  it('refuses reads after close', () => {
    const path = join(dir, 'closed.safetensors');
    writeSafetensors(path, { t: { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
    const file = SafetensorsFile.open(path);
    file.close();
    file.close();
    expect(() => file.readF32('t')).toThrow(/closed\.safetensors.*'t'.*closed/);
    try {
      file.readF32('t');
    } catch (error) {
      expect(isParallelError(error, 'DESTROYED')).toBe(true);
    }
  });
});

describe('checkpoint folders', () => {
  const tensors = {
    'model.embed_tokens.weight': { shape: [10, 6], data: values(60, 7) },
    'model.norm.weight': { shape: [6], data: values(6, 8) },
    'lm_head.weight': { shape: [10, 6], data: values(60, 9) },
  };

  it('round-trips one model.safetensors', () => {
    const folder = join(dir, 'single');
    Checkpoint.write(folder, tensors, { dtype: 'F32' });
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
    const checkpoint = Checkpoint.open(folder);
    expect(checkpoint.names().sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, { shape, data }] of Object.entries(tensors)) {
      expect(checkpoint.has(name)).toBe(true);
      expect(checkpoint.info(name).shape).toEqual(shape);
      expectSame(checkpoint.readF32(name), data);
    }
    expect(checkpoint.has('nope')).toBe(false);
    checkpoint.close();
  });

  it('round-trips shards with a Hugging Face index, opening only the shards read', () => {
    const folder = join(dir, 'sharded');
    Checkpoint.write(folder, tensors, { dtype: 'BF16', shardBytes: 100 });
    const files = readdirSync(folder).sort();
    expect(files).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(readFileSync(join(folder, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe((60 + 6 + 60) * 2);
    expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(tensors).sort());
    const checkpoint = Checkpoint.open(folder);
    expect(checkpoint.bytesRead).toBe(0);
    const slice = checkpoint.readF32('lm_head.weight', { dim: 0, start: 2, length: 3 });
    expect(checkpoint.bytesRead).toBe(3 * 6 * 2);
    expect(slice).toEqual(through(tensors['lm_head.weight'].data, 'BF16').subarray(12, 30));
    for (const [name, { data }] of Object.entries(tensors)) {
      expectSame(checkpoint.readF32(name), through(data, 'BF16'));
    }
    checkpoint.close();
    expect(() => checkpoint.readF32('model.norm.weight')).toThrow(/closed/);
  });
});

describe('half-precision conversion', () => {
  it('encodes f16 special values: ±0, subnormals, max, overflow, inf, NaN, ties to even', () => {
    expect(f32ToF16(0)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(1023 * 2 ** -24)).toBe(0x03ff);
    expect(f32ToF16(2 ** -14)).toBe(0x0400);
    expect(f32ToF16(2 ** -25)).toBe(0x0000);
    expect(f32ToF16(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002);
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(f32ToF16(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(f32ToF16(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16(Number.NaN) & 0x03ff).not.toBe(0);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(-2)).toBe(0xc000);
  });

  it('decodes f16 special values', () => {
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(f16ToF32(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  it('f16 and bf16 survive a round trip for every non-NaN pattern', () => {
    const wrong: string[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      const f16 = (bits & 0x7c00) !== 0x7c00 || (bits & 0x3ff) === 0;
      const bf16 = (bits & 0x7f80) !== 0x7f80 || (bits & 0x7f) === 0;
      if (f16 && f32ToF16(f16ToF32(bits)) !== bits) wrong.push(`f16 ${bits.toString(16)}`);
      if (bf16 && f32ToBf16(bf16ToF32(bits)) !== bits) wrong.push(`bf16 ${bits.toString(16)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds bf16 to nearest even and keeps NaN', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16(-0)).toBe(0x8000);
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80);
    expect(bf16ToF32(f32ToBf16(Number.NaN))).toBeNaN();
    expect(f32ToBf16(Number.NEGATIVE_INFINITY)).toBe(0xff80);
  });
});

describe('model presets', () => {
  for (const name of presetNames()) {
    it(`${name} survives toHfConfig then parseLlamaConfig unchanged`, () => {
      const config = preset(name);
      // Through JSON text, as config.json on disk would be read back.
      const json = JSON.parse(JSON.stringify(toHfConfig(config)));
      expect(parseLlamaConfig(json, 'config.json')).toEqual(config);
      expect(json.architectures).toEqual([
        config.numExperts === undefined ? 'LlamaForCausalLM' : 'MixtralForCausalLM',
      ]);
      expect(json.torch_dtype).toBe('float32');
    });
  }

  it('refuses an unknown preset, listing the known ones', () => {
    expect(() => preset('llama-huge')).toThrow(/llama-huge.*llama-tiny/);
  });

  it('names llama-tiny parameters as Hugging Face does: embed, 9 per layer, norm, lm_head', () => {
    const shapes = llamaParameterShapes(preset('llama-tiny'));
    expect(shapes).toHaveLength(1 + 9 * 2 + 1 + 1);
    const byName = Object.fromEntries(shapes.map((p) => [p.name, p.shape]));
    expect(byName['model.embed_tokens.weight']).toEqual([96, 48]);
    expect(byName['model.layers.1.self_attn.q_proj.weight']).toEqual([48, 48]);
    expect(byName['model.layers.1.self_attn.k_proj.weight']).toEqual([16, 48]);
    expect(byName['model.layers.0.self_attn.o_proj.weight']).toEqual([48, 48]);
    expect(byName['model.layers.0.mlp.down_proj.weight']).toEqual([48, 80]);
    expect(byName['lm_head.weight']).toEqual([96, 48]);
    expect(llamaParameterShapes(preset('llama-tiny-tied'))).toHaveLength(1 + 9 * 2 + 1);
  });

  it('lays mixtral-tiny experts out as block_sparse_moe', () => {
    const names = llamaParameterShapes(preset('mixtral-tiny')).map((p) => p.name);
    // Per layer: 2 norms, 4 attention, 1 router, 3 per expert.
    expect(names).toHaveLength(1 + (6 + 1 + 3 * 4) * 2 + 1 + 1);
    expect(names).toContain('model.layers.1.block_sparse_moe.experts.3.w2.weight');
    expect(names).not.toContain('model.layers.0.mlp.gate_proj.weight');
  });

  it('draws deterministic random weights at the documented scales', () => {
    const config = preset('llama-tiny');
    const a = randomLlamaWeights(config, 7);
    const b = randomLlamaWeights(config, 7);
    const q = a['model.layers.0.self_attn.q_proj.weight']!;
    expectSame(q, b['model.layers.0.self_attn.q_proj.weight']!);
    expect(q).not.toEqual(a['model.layers.1.self_attn.q_proj.weight']);
    expect(Math.max(...q.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(48));
    const norm = a['model.norm.weight']!;
    expect(norm.every((v) => v >= 0.9 && v <= 1.1)).toBe(true);
    expect(a['model.embed_tokens.weight']!.every((v) => Math.abs(v) <= 0.5)).toBe(true);
  });

  it('writes a random checkpoint that reads back, and refuses to overwrite one unasked', () => {
    const folder = join(dir, 'random-model');
    const config = preset('llama-tiny');
    writeRandomCheckpoint(folder, config, { seed: 3, dtype: 'F16', shardBytes: 20_000 });
    expect(existsSync(join(folder, 'config.json'))).toBe(true);
    const checkpoint = Checkpoint.open(folder);
    const weights = randomLlamaWeights(config, 3);
    for (const { name } of llamaParameterShapes(config)) {
      expectSame(checkpoint.readF32(name), through(weights[name]!, 'F16'));
    }
    checkpoint.close();
    expect(() => writeRandomCheckpoint(folder, config, { seed: 3, dtype: 'F32' })).toThrow(/config\.json/);
    writeRandomCheckpoint(folder, config, { seed: 4, dtype: 'F32', overwrite: true });
    expect(readdirSync(folder).sort()).toEqual(['config.json', 'model.safetensors']);
  });
});
