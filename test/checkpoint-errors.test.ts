import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ErrorCode, isParallelError } from '../src/errors.js';
import { Checkpoint } from '../src/models/checkpoint/checkpoint.js';
import { SafetensorsFile, writeSafetensors } from '../src/models/checkpoint/safetensors.js';
import { readLlamaConfig, toHfConfig } from '../src/models/llama-config.js';
import { preset } from '../src/models/presets.js';

const root = mkdtempSync(join(tmpdir(), 'checkpoint-errors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let folders = 0;
function folder(): string {
  const dir = join(root, `case-${++folders}`);
  mkdirSync(dir);
  return dir;
}

/** A safetensors file with a hand-written header, so each corruption is exactly the one under test. */
function rawFile(path: string, header: unknown, dataBytes: number): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
}

/** Runs `fn`, asserting it throws a ParallelError of `code` whose message contains every one of `parts`. */
function expectError(fn: () => unknown, code: ErrorCode, parts: readonly string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a throw').toBeDefined();
  expect(isParallelError(caught, code), `code ${code}: ${String(caught)}`).toBe(true);
  const { message } = caught as Error;
  for (const part of parts) expect(message).toContain(part);
}

const openFile = (path: string) => () => SafetensorsFile.open(path);

describe('corrupt safetensors files', () => {
  it('a file under 8 bytes', () => {
    const path = join(folder(), 'short.safetensors');
    writeFileSync(path, Buffer.from([1, 2, 3]));
    expectError(openFile(path), 'CHECKPOINT', ['short.safetensors', '8']);
  });

  it('a header length past the end of the file', () => {
    const path = join(folder(), 'long-header.safetensors');
    const bytes = Buffer.alloc(16);
    bytes.writeBigUInt64LE(1000n);
    writeFileSync(path, bytes);
    expectError(openFile(path), 'CHECKPOINT', ['long-header.safetensors', '1000']);
  });

  it('a header that is not JSON', () => {
    const path = join(folder(), 'not-json.safetensors');
    rawFile(path, '{"a": {', 0);
    expectError(openFile(path), 'CHECKPOINT', ['not-json.safetensors', 'JSON']);
  });

  it('a header that is JSON but not an object', () => {
    const path = join(folder(), 'array.safetensors');
    rawFile(path, '[1, 2]', 0);
    expectError(openFile(path), 'CHECKPOINT', ['array.safetensors', 'object']);
  });

  it('an unknown dtype names the tensor and the readable dtypes', () => {
    const path = join(folder(), 'dtype.safetensors');
    rawFile(path, { 'w.q': { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } }, 2);
    expectError(openFile(path), 'CHECKPOINT', ['dtype.safetensors', "'w.q'", 'Q4', 'F32', 'F16', 'BF16']);
  });

  it('a non-float dtype opens but is refused when read as f32', () => {
    const path = join(folder(), 'ints.safetensors');
    rawFile(path, { ids: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } }, 8);
    const file = SafetensorsFile.open(path);
    expectError(() => file.readF32('ids'), 'CHECKPOINT', ['ints.safetensors', "'ids'", 'I32', 'F32']);
    file.close();
  });

  it('a negative or fractional shape', () => {
    const path = join(folder(), 'shape.safetensors');
    rawFile(path, { t: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 0] } }, 0);
    expectError(openFile(path), 'CHECKPOINT', ['shape.safetensors', "'t'", 'shape']);
  });

  it('data offsets that are not [begin <= end]', () => {
    const path = join(folder(), 'backwards.safetensors');
    rawFile(path, { t: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8);
    expectError(openFile(path), 'CHECKPOINT', ['backwards.safetensors', "'t'", 'data_offsets']);
  });

  it('data offsets past the end of the data section', () => {
    const path = join(folder(), 'truncated.safetensors');
    rawFile(path, { 'model.norm.weight': { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 12);
    expectError(openFile(path), 'CHECKPOINT', ['truncated.safetensors', "'model.norm.weight'", '16', '12']);
  });

  it('overlapping byte ranges name both tensors', () => {
    const path = join(folder(), 'overlap.safetensors');
    rawFile(
      path,
      {
        first: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
        second: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
      },
      24,
    );
    expectError(openFile(path), 'CHECKPOINT', ['overlap.safetensors', "'first'", "'second'", 'overlap']);
  });

  it('a byte length that does not match shape and dtype', () => {
    const path = join(folder(), 'length.safetensors');
    rawFile(path, { emb: { dtype: 'F16', shape: [3, 2], data_offsets: [0, 8] } }, 8);
    expectError(openFile(path), 'CHECKPOINT', ['length.safetensors', "'emb'", '8', '12']);
  });

  it('a missing tensor names the file and the tensor', () => {
    const path = join(folder(), 'model.safetensors');
    writeSafetensors(path, { 'model.norm.weight': { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
    const file = SafetensorsFile.open(path);
    expectError(() => file.info('model.norm.weigth'), 'CHECKPOINT', [
      'model.safetensors',
      'model.norm.weigth',
    ]);
    expectError(() => file.readF32('lm_head.weight'), 'CHECKPOINT', ['model.safetensors', 'lm_head.weight']);
    file.close();
  });

  it('a slice outside the tensor', () => {
    const path = join(folder(), 'slice.safetensors');
    writeSafetensors(path, { t: { dtype: 'F32', shape: [4, 2], data: new Float32Array(8) } });
    const file = SafetensorsFile.open(path);
    expectError(() => file.readF32('t', { dim: 0, start: 3, length: 2 }), 'INVALID_ARGUMENT', [
      'slice.safetensors',
      "'t'",
    ]);
    expectError(() => file.readF32('t', { dim: 2, start: 0, length: 1 }), 'INVALID_ARGUMENT', [
      'slice.safetensors',
    ]);
    file.close();
  });

  it('a file that does not exist is an IO error naming it', () => {
    expectError(openFile(join(root, 'absent.safetensors')), 'IO', ['absent.safetensors']);
  });
});

describe('broken checkpoint folders', () => {
  const norm = { dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };

  it('a folder with neither model.safetensors nor an index', () => {
    const dir = folder();
    expectError(() => Checkpoint.open(dir), 'CHECKPOINT', [
      dir,
      'model.safetensors',
      'model.safetensors.index.json',
    ]);
  });

  it('a malformed index', () => {
    const dir = folder();
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    expectError(() => Checkpoint.open(dir), 'CHECKPOINT', ['model.safetensors.index.json', 'JSON']);
  });

  it('an index without a weight_map', () => {
    const dir = folder();
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
    expectError(() => Checkpoint.open(dir), 'CHECKPOINT', ['model.safetensors.index.json', '$.weight_map']);
  });

  it('an index listing a file that is not there', () => {
    const dir = folder();
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { 'model.norm.weight': norm });
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        weight_map: {
          'model.norm.weight': 'model-00001-of-00002.safetensors',
          'lm_head.weight': 'model-00002-of-00002.safetensors',
        },
      }),
    );
    expectError(() => Checkpoint.open(dir), 'CHECKPOINT', [
      'model.safetensors.index.json',
      'lm_head.weight',
      'model-00002-of-00002.safetensors',
    ]);
  });

  it('an index listing a tensor its file does not hold', () => {
    const dir = folder();
    writeSafetensors(join(dir, 'model-00001-of-00001.safetensors'), { 'model.norm.weight': norm });
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        weight_map: {
          'model.norm.weight': 'model-00001-of-00001.safetensors',
          'lm_head.weight': 'model-00001-of-00001.safetensors',
        },
      }),
    );
    const checkpoint = Checkpoint.open(dir);
    expectError(() => checkpoint.readF32('model.norm.weight'), 'CHECKPOINT', [
      'model.safetensors.index.json',
      'model-00001-of-00001.safetensors',
      'lm_head.weight',
    ]);
    checkpoint.close();
  });

  it('a tensor missing from the checkpoint', () => {
    const dir = folder();
    writeSafetensors(join(dir, 'model.safetensors'), { 'model.norm.weight': norm });
    const checkpoint = Checkpoint.open(dir);
    expectError(() => checkpoint.info('lm_head.weight'), 'CHECKPOINT', [
      'model.safetensors',
      'lm_head.weight',
    ]);
    checkpoint.close();
  });
});

describe('bad config.json', () => {
  /** A valid Llama config with `change` applied (undefined deletes a key), written to a fresh folder. */
  function configDir(change: Record<string, unknown>): string {
    const dir = folder();
    const json: Record<string, unknown> = { ...toHfConfig(preset('llama-tiny')), ...change };
    for (const [key, value] of Object.entries(change)) if (value === undefined) delete json[key];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
    return dir;
  }

  it('no config.json is an IO error naming it', () => {
    expectError(() => readLlamaConfig(folder()), 'IO', ['config.json']);
  });

  it('config.json that is not JSON carries the parse message', () => {
    const dir = folder();
    writeFileSync(join(dir, 'config.json'), '{"vocab_size": 96,');
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', 'JSON']);
  });

  it('a missing field', () => {
    const dir = configDir({ hidden_size: undefined });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.hidden_size', 'missing']);
  });

  it('a field of the wrong type', () => {
    const dir = configDir({ num_hidden_layers: '2' });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.num_hidden_layers']);
  });

  it('a non-positive field', () => {
    const dir = configDir({ vocab_size: 0 });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.vocab_size', 'positive']);
  });

  it('heads that do not divide hidden_size (no head_dim)', () => {
    const dir = configDir({ head_dim: undefined, num_attention_heads: 5, num_key_value_heads: 5 });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.num_attention_heads', '48']);
  });

  it('kv heads that do not divide heads', () => {
    const dir = configDir({ num_key_value_heads: 4 });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.num_key_value_heads', '6']);
  });

  it('more experts per token than experts', () => {
    const dir = configDir({ num_local_experts: 2, num_experts_per_tok: 3 });
    expectError(() => readLlamaConfig(dir), 'CHECKPOINT', ['config.json', '$.num_experts_per_tok', '2']);
  });
});
