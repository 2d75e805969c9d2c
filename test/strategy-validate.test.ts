import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Finding } from '../src/strategy/findings.js';
import { hasErrors } from '../src/strategy/findings.js';
import { parseStrategyText, validateStrategy } from '../src/strategy/validate.js';

// biome-ignore lint/suspicious/noExplicitAny: variants edit the parsed JSON freely, wrong types included
type Json = any;

const read = (file: string): Json =>
  JSON.parse(readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8'));
const fits: Json = read('seed-fits.json');

/** Validates a copy of seed-fits.json after `edit` changed it. */
function variant(edit: (s: Json) => void): { findings: readonly Finding[]; valid: boolean } {
  const s = structuredClone(fits);
  edit(s);
  const { findings } = validateStrategy(s);
  return { findings, valid: !hasErrors(findings) };
}

/** The finding with this code, checked for severity, path and a fix. */
function expectFinding(
  findings: readonly Finding[],
  code: string,
  severity: Finding['severity'],
  path: string,
): Finding {
  const found = findings.find((f) => f.code === code && f.path === path);
  expect(found, `${code} at ${path} in ${JSON.stringify(findings, null, 1)}`).toBeDefined();
  expect(found!.severity).toBe(severity);
  expect(found!.message.length).toBeGreaterThan(10);
  expect(found!.fix).toBeTruthy();
  return found!;
}

/** One error with this code and path, and the file is not valid. */
function expectError(edit: (s: Json) => void, code: string, path: string): Finding {
  const { findings, valid } = variant(edit);
  expect(valid).toBe(false);
  return expectFinding(findings, code, 'error', path);
}

describe('validateStrategy: the examples', () => {
  it('accepts seed-fits.json, with warnings only', () => {
    const { findings, valid } = variant(() => {});
    expect(valid).toBe(true);
    expect(findings.every((f) => f.severity === 'warning')).toBe(true);
  });

  it('rejects the seed: memory over the 16 MiB cap, naming device, bytes needed and cap', () => {
    const { findings } = validateStrategy(read('seed-strategy.json'));
    expect(hasErrors(findings)).toBe(true);
    const over = findings.filter((f) => f.code === 'MEMORY_OVER_CAP');
    expect(over.map((f) => f.message.match(/^device (\d+)/)?.[1])).toEqual(['0', '1']);
    for (const f of over) {
      expect(f.severity).toBe('error');
      expect(f.path).toBe('$.hardware.memory_per_device_bytes');
      expect(f.message).toMatch(/needs \d+ bytes .* but the cap is 16777216 bytes \(16 MiB\)/);
    }
    expect(over[0]!.message).toContain('33560576 bytes');
    expect(over[0]!.fix).toContain('33560576');
    const heavy = findings.filter((f) => f.code === 'DEVICE_SHARED_BY_STAGES');
    expect(heavy.map((f) => f.severity)).toEqual(['warning', 'warning']);
    expect(heavy.map((f) => f.message.match(/^device (\d+)/)?.[1])).toEqual(['1', '2']);
  });

  it.each(['balanced-3dev.json', 'vocab-parallel.json', 'data-parallel-agg.json', 'megatron-mlp.json'])(
    'accepts %s',
    (file) => {
      const { findings } = validateStrategy(read(file));
      expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
    },
  );
});

describe('parseStrategyText', () => {
  it.each([
    ['{\n  "a": 1,\n  "b": }', 3, 8],
    ['{\n "a": 1\n "b": 2}', 3, 2],
    ['{\n  "a": tru\n}', 2, 11],
    ['[1,]', 1, 4],
    ['{"a": 1', 1, 8],
  ])('reports a syntax error with its line and column: %j', (text, line, column) => {
    const { value, findings } = parseStrategyText(text);
    expect(value).toBeUndefined();
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ code: 'JSON_SYNTAX', severity: 'error', path: '$' });
    expect(findings[0]!.message).toContain(`(line ${line}, column ${column})`);
    // The message never quotes the whole file back.
    expect(findings[0]!.message).not.toContain('is not valid JSON');
  });

  it('parses valid text without findings', () => {
    expect(parseStrategyText(JSON.stringify(fits))).toEqual({ value: fits, findings: [] });
  });
});

describe('validateStrategy: schema errors', () => {
  it('wrong type', () => {
    const f = expectError((s) => (s.model.hidden_size = '512'), 'SCHEMA_INVALID_TYPE', '$.model.hidden_size');
    expect(f.message).toMatch(/number/);
    expectError((s) => (s.stages = {}), 'SCHEMA_INVALID_TYPE', '$.stages');
    expectError(
      (s) => (s.stages[0].tensor_parallel.devices = [0, 1.5]),
      'SCHEMA_INVALID_TYPE',
      '$.stages[0].tensor_parallel.devices[1]',
    );
  });

  it('missing fields', () => {
    expectError((s) => delete s.model.seq_len, 'SCHEMA_INVALID_TYPE', '$.model.seq_len');
    expectError((s) => delete s.hardware, 'SCHEMA_INVALID_TYPE', '$.hardware');
    expectError((s) => delete s.communications[0].op, 'SCHEMA_INVALID_VALUE', '$.communications[0].op');
  });

  it('unknown keys, with a fix that points at the schema', () => {
    const f = expectError((s) => (s.stages[1].devcie = 1), 'SCHEMA_UNRECOGNIZED_KEYS', '$.stages[1]');
    expect(f.message).toContain('devcie');
    expect(f.fix).toContain('schema');
    expectError((s) => (s.extra = true), 'SCHEMA_UNRECOGNIZED_KEYS', '$');
  });

  it('unknown enum values', () => {
    expectError((s) => (s.stages[1].kind = 'attention'), 'SCHEMA_INVALID_VALUE', '$.stages[1].kind');
    expectError(
      (s) => (s.stages[0].tensor_parallel.mode = 'diagonal'),
      'SCHEMA_INVALID_VALUE',
      '$.stages[0].tensor_parallel.mode',
    );
  });

  it('huge numbers', () => {
    expectError((s) => (s.model.hidden_size = 2 ** 40), 'SCHEMA_TOO_BIG', '$.model.hidden_size');
    expectError((s) => (s.hardware.device_count = 1000), 'SCHEMA_TOO_BIG', '$.hardware.device_count');
    expectError((s) => (s.stages[0].device = 5000), 'SCHEMA_TOO_BIG', '$.stages[0].device');
    const { valid, findings } = variant((s) => (s.hardware.memory_per_device_bytes = 2 ** 60));
    expect(valid).toBe(false);
    expect(
      findings.some((f) => f.path === '$.hardware.memory_per_device_bytes' && f.severity === 'error'),
    ).toBe(true);
  });

  it('negative and zero numbers', () => {
    expectError((s) => (s.batch.batch_size = -32), 'SCHEMA_TOO_SMALL', '$.batch.batch_size');
    expectError((s) => (s.batch.microbatches = 0), 'SCHEMA_TOO_SMALL', '$.batch.microbatches');
    expectError((s) => (s.communications[1].to = [-1]), 'SCHEMA_TOO_SMALL', '$.communications[1].to[0]');
    expectError(
      (s) => (s.stages[0].tensor_parallel.devices = []),
      'SCHEMA_TOO_SMALL',
      '$.stages[0].tensor_parallel.devices',
    );
  });

  it('a non-object value', () => {
    for (const value of [null, 42, [], 'strategy']) {
      const { findings, strategy } = validateStrategy(value);
      expect(strategy).toBeNull();
      expectFinding(findings, 'SCHEMA_INVALID_TYPE', 'error', '$');
    }
  });
});

describe('validateStrategy: devices', () => {
  it('stage device out of range, naming the device count', () => {
    const f = expectError(
      (s) => {
        delete s.stages[2].data_parallel;
        s.stages[2].device = 3;
      },
      'DEVICE_OUT_OF_RANGE',
      '$.stages[2].device',
    );
    expect(f.message).toContain('device 3 does not exist');
    expect(f.message).toContain('device_count is 3');
  });

  it('tensor-parallel and data-parallel devices out of range', () => {
    expectError(
      (s) => (s.stages[1].tensor_parallel.devices = [1, 4]),
      'DEVICE_OUT_OF_RANGE',
      '$.stages[1].tensor_parallel.devices[1]',
    );
    expectError(
      (s) => (s.stages[2].data_parallel.devices = [7]),
      'DEVICE_OUT_OF_RANGE',
      '$.stages[2].data_parallel.devices[0]',
    );
  });

  it('communication from and to out of range', () => {
    expectError(
      (s) => (s.communications[0].from = [0, 9]),
      'DEVICE_OUT_OF_RANGE',
      '$.communications[0].from[1]',
    );
    expectError((s) => (s.communications[1].to = [3]), 'DEVICE_OUT_OF_RANGE', '$.communications[1].to[0]');
  });

  it('a device twice in a group', () => {
    const f = expectError(
      (s) => (s.stages[0].tensor_parallel.devices = [0, 0]),
      'DUPLICATE_DEVICE',
      '$.stages[0].tensor_parallel.devices',
    );
    expect(f.message).toContain('[0, 0]');
    expectError((s) => (s.communications[0].to = [1, 2, 1]), 'DUPLICATE_DEVICE', '$.communications[0].to');
  });

  it('data parallel replicas that do not match the devices', () => {
    expectError(
      (s) => (s.stages[2].data_parallel.replicas = 2),
      'REPLICA_COUNT',
      '$.stages[2].data_parallel.replicas',
    );
  });
});

describe('validateStrategy: splits', () => {
  it('split_dim that does not match the mode', () => {
    const f = expectError(
      (s) => (s.stages[0].tensor_parallel.split_dim = 0),
      'SPLIT_DIM_MODE',
      '$.stages[0].tensor_parallel.split_dim',
    );
    expect(f.fix).toContain('split_dim to 1');
    expectError(
      (s) => (s.stages[1].tensor_parallel.split_dim = 1),
      'SPLIT_DIM_MODE',
      '$.stages[1].tensor_parallel.split_dim',
    );
  });

  it('sizes that do not add up, or do not give one size per device', () => {
    const f = expectError(
      (s) => (s.stages[0].tensor_parallel.sizes = [200, 300]),
      'SIZES_MISMATCH',
      '$.stages[0].tensor_parallel.sizes',
    );
    expect(f.message).toContain('hidden_size = 512');
    expect(f.message).toContain('add up to 500');
    expectError(
      (s) => (s.stages[1].tensor_parallel.sizes = [512]),
      'SIZES_MISMATCH',
      '$.stages[1].tensor_parallel.sizes',
    );
  });

  it('uneven sizes that do add up are fine', () => {
    expect(variant((s) => (s.stages[0].tensor_parallel.sizes = [384, 128])).valid).toBe(true);
  });

  it('a split that does not divide evenly, without sizes: suggests sizes', () => {
    const f = expectError(
      (s) => {
        s.stages[0].tensor_parallel.devices = [0, 1, 2];
        s.communications[0].from = [0, 1, 2];
      },
      'SPLIT_NOT_DIVISIBLE',
      '$.stages[0].tensor_parallel',
    );
    expect(f.message).toContain('hidden_size = 512');
    expect(f.fix).toContain('[171, 171, 170]');
  });

  it('a row-parallel stage with an activation', () => {
    expectError((s) => (s.stages[1].activation = 'relu'), 'ROW_ACTIVATION', '$.stages[1].activation');
    expect(variant((s) => (s.stages[1].activation = 'none')).valid).toBe(true);
  });

  it('a tensor-parallel aggregation, or a stage both tensor- and data-parallel', () => {
    expectError(
      (s) => {
        delete s.stages[2].data_parallel;
        s.stages[2].tensor_parallel = { mode: 'column', split_dim: 1, devices: [2] };
      },
      'AGGREGATION_SPLIT',
      '$.stages[2].tensor_parallel',
    );
    expectError(
      (s) => (s.stages[1].data_parallel = { replicas: 2, devices: [1, 2] }),
      'TP_AND_DP',
      '$.stages[1]',
    );
  });
});

describe('validateStrategy: communications and layouts', () => {
  it('an all_reduce after a column-parallel stage: names all_gather as the fix', () => {
    const f = expectError(
      (s) => (s.communications[0].op = 'all_reduce'),
      'COMMUNICATION_LAYOUT',
      '$.communications[0].op',
    );
    expect(f.message).toContain('embed_1');
    expect(f.fix).toContain('all_gather');
  });

  it('an all_gather after a row-parallel stage: names all_reduce as the fix', () => {
    const f = expectError(
      (s) => (s.communications[1].op = 'all_gather'),
      'COMMUNICATION_LAYOUT',
      '$.communications[1].op',
    );
    expect(f.fix).toContain('all_reduce');
  });

  it('a missing communication: the next stage input is not produced', () => {
    const f = expectError((s) => s.communications.splice(0, 1), 'INPUT_NOT_PRODUCED', '$.stages[1]');
    expect(f.message).toContain('expert_2');
    expect(f.fix).toContain('"op": "all_gather"');
    expect(f.fix).toContain('"from": [0, 1], "to": [1, 2]');
  });

  it('a communication to the wrong devices', () => {
    const f = expectError(
      (s) => (s.communications[0].to = [0, 2]),
      'COMMUNICATION_TARGET',
      '$.communications[0].to',
    );
    expect(f.fix).toContain('"to": [1, 2]');
  });

  it('an unused communication', () => {
    const f = expectError(
      (s) => s.communications.push({ name: 'extra', op: 'broadcast', from: [2], to: [0] }),
      'COMMUNICATION_UNUSED',
      '$.communications[2].from',
    );
    expect(f.message).toContain("'extra'");
  });

  it('duplicate names across stages and communications', () => {
    const f = expectError(
      (s) => (s.communications[1].name = 'expert_2'),
      'DUPLICATE_NAME',
      '$.communications[1].name',
    );
    expect(f.message).toContain('$.stages[1].name');
    expectError((s) => (s.stages[1].name = 'embed_1'), 'DUPLICATE_NAME', '$.stages[1].name');
  });
});

describe('validateStrategy: stage order and inputs', () => {
  it('an embedding that is not first', () => {
    const { findings, valid } = variant((s) => {
      s.stages = [s.stages[1], s.stages[0], s.stages[2]];
    });
    expect(valid).toBe(false);
    expectFinding(findings, 'EMBEDDING_NOT_FIRST', 'error', '$.stages[1].kind');
    expectFinding(findings, 'NO_EMBEDDING', 'error', '$.stages[0].kind');
  });

  it('an aggregation that is not last', () => {
    expectError(
      (s) => s.stages.push({ name: 'tail', kind: 'linear', device: 2 }),
      'AGGREGATION_NOT_LAST',
      '$.stages[2].kind',
    );
  });

  it('an unknown input stage, and an input that is not the previous stage', () => {
    const f = expectError((s) => (s.stages[1].input = 'embed_9'), 'INPUT_UNKNOWN', '$.stages[1].input');
    expect(f.message).toContain("'embed_9'");
    expect(f.fix).toContain("'embed_1'");
    expectError((s) => (s.stages[2].input = 'embed_1'), 'INPUT_NOT_PREVIOUS', '$.stages[2].input');
    expect(variant((s) => (s.stages[1].input = 'embed_1')).valid).toBe(true);
  });
});

describe('validateStrategy: batch and memory', () => {
  it('a batch that does not divide into the microbatches', () => {
    const f = expectError((s) => (s.batch.microbatches = 5), 'BATCH_NOT_DIVISIBLE', '$.batch.microbatches');
    expect(f.message).toContain('32');
    expect(f.fix).toMatch(/8, 16, 32/);
  });

  it('the microbatches override is checked too', () => {
    const { findings } = validateStrategy(fits, { microbatches: 3 });
    expectFinding(findings, 'BATCH_NOT_DIVISIBLE', 'error', '$.batch.microbatches');
  });

  it('memory over the cap, from the file or from the override', () => {
    const f = expectError(
      (s) => (s.hardware.memory_per_device_bytes = 1 << 20),
      'MEMORY_OVER_CAP',
      '$.hardware.memory_per_device_bytes',
    );
    expect(f.message).toMatch(/^device \d+ needs \d+ bytes/);
    expect(f.message).toContain('the cap is 1048576 bytes (1 MiB)');
    const { findings } = validateStrategy(fits, { memoryCapBytes: 1 << 20 });
    expectFinding(findings, 'MEMORY_OVER_CAP', 'error', '$.hardware.memory_per_device_bytes');
  });
});

describe('validateStrategy: warnings, not errors', () => {
  it('data parallel with one replica', () => {
    const { findings, valid } = variant(() => {});
    expect(valid).toBe(true);
    expectFinding(findings, 'SINGLE_REPLICA', 'warning', '$.stages[2].data_parallel');
  });

  it('an idle device', () => {
    const { findings, valid } = variant((s) => (s.hardware.device_count = 4));
    expect(valid).toBe(true);
    expect(expectFinding(findings, 'DEVICE_IDLE', 'warning', '$.hardware.device_count').message).toBe(
      'device 3 runs no stage',
    );
  });

  it('a device shared by stages', () => {
    const { findings, valid } = variant(() => {});
    expect(valid).toBe(true);
    const shared = findings.filter((f) => f.code === 'DEVICE_SHARED_BY_STAGES');
    expect(shared.map((f) => f.severity)).toEqual(['warning', 'warning']);
    expect(shared[0]!.path).toBe('$.stages');
    expect(shared[0]!.message).toContain('device 1 serves 2 stages (embed_1, expert_2)');
  });

  it('a stage device outside its tensor-parallel group', () => {
    const { findings, valid } = variant((s) => (s.stages[0].device = 2));
    expect(valid).toBe(true);
    expectFinding(findings, 'STAGE_DEVICE_OUTSIDE_GROUP', 'warning', '$.stages[0].device');
  });
});

describe('estimated load', () => {
  it('warns about the seed imbalance: device 0 only looks up embeddings while 1 and 2 carry the expert', () => {
    const seed = JSON.parse(readFileSync(new URL('../examples/seed-strategy.json', import.meta.url), 'utf8'));
    const finding = validateStrategy(seed).findings.find((f) => f.code === 'LOAD_IMBALANCE');
    expect(finding?.severity).toBe('warning');
    expect(finding?.message).toMatch(/device 0: [\d.]+ MFLOP \(light\), device 1: [\d.]+ MFLOP \(heavy\)/);
  });
});
