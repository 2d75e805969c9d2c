import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { preset, writeRandomCheckpoint } from '../src/models/presets.js';
import { checkStrategy } from '../src/strategy/check-strategy.js';
import type { Finding } from '../src/strategy/findings.js';
import { hasErrors } from '../src/strategy/findings.js';
import { estimateModelMemory } from '../src/strategy/model-estimate.js';
import { validateStrategy } from '../src/strategy/validate.js';
import { validateModelStrategy } from '../src/strategy/validate-model.js';

// biome-ignore lint/suspicious/noExplicitAny: variants edit the parsed JSON freely, wrong types included
type Json = any;

const read = (file: string): Json =>
  JSON.parse(readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8'));

/** llama-tiny (6 heads over 2 KV heads, 2 layers) on 4 devices: two stages of two devices. */
const tiny: Json = {
  hardware: { device_count: 4, memory_per_device_bytes: 64 * 2 ** 20 },
  model: { preset: 'llama-tiny' },
  batch: { batch_size: 4, seq_len: 8, microbatches: 2 },
  stages: [
    { name: 'a', kind: 'decoder', devices: [0, 1], layers: [0, 0] },
    { name: 'b', kind: 'decoder', devices: [2, 3], layers: [1, 1] },
  ],
};
const moe: Json = { ...structuredClone(tiny), model: { preset: 'mixtral-tiny' } };

function variant(base: Json, edit: (s: Json) => void): readonly Finding[] {
  const s = structuredClone(base);
  edit(s);
  return validateModelStrategy(s).findings;
}

/** One error (or warning) with this code at this path, with a message and a fix. */
function expectFinding(
  findings: readonly Finding[],
  code: string,
  path: string,
  severity = 'error',
): Finding {
  const found = findings.find((f) => f.code === code && f.path === path);
  expect(found, `${code} at ${path} in ${JSON.stringify(findings, null, 1)}`).toBeDefined();
  expect(found!.severity).toBe(severity);
  expect(found!.message.length).toBeGreaterThan(10);
  expect(found!.fix).toBeTruthy();
  return found!;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('model strategies: the examples and the forms', () => {
  it.each(['llama-tp-pp.json', 'mixtral-ep.json'])('accepts %s', (file) => {
    const checked = checkStrategy(read(file));
    expect(checked.family).toBe('model');
    expect(checked.findings.filter((f) => f.severity === 'error')).toEqual([]);
  });

  it('tells the two forms apart; validateStrategy passes a model file on to the model checks', () => {
    expect(checkStrategy(tiny).family).toBe('model');
    expect(checkStrategy(read('seed-fits.json')).family).toBe('chain');
    expect(validateStrategy({ ...tiny, model: { preset: 'nope' } }).findings[0]!.code).toBe('MODEL_PRESET');
  });

  it('reads a checkpoint folder relative to the strategy file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgp-model-strategy-'));
    dirs.push(dir);
    writeRandomCheckpoint(join(dir, 'ckpt'), preset('llama-tiny'), { seed: 3, dtype: 'F32' });
    const s = { ...tiny, model: { checkpoint: 'ckpt' } };
    const ok = validateModelStrategy(s, { baseDir: dir });
    expect(ok.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(ok.source!.config.numLayers).toBe(2);
    expectFinding(
      validateModelStrategy(s, { baseDir: tmpdir() }).findings,
      'MODEL_CHECKPOINT',
      '$.model.checkpoint',
    );
  });

  it('model source: exactly one of preset and checkpoint, and a preset that exists', () => {
    expectFinding(
      variant(tiny, (s) => (s.model = { preset: 'llama-tiny', checkpoint: 'x' })),
      'MODEL_SOURCE',
      '$.model',
    );
    expectFinding(
      variant(tiny, (s) => (s.model.preset = 'llama-huge')),
      'MODEL_PRESET',
      '$.model.preset',
    );
  });

  it('schema errors keep their paths', () => {
    const f = variant(tiny, (s) => (s.stages[0].layers = [0]));
    expect(f.some((x) => x.path.startsWith('$.stages[0].layers'))).toBe(true);
    expectFinding(
      variant(tiny, (s) => (s.stages[1].tp = 2)),
      'SCHEMA_UNRECOGNIZED_KEYS',
      '$.stages[1]',
    );
  });
});

describe('model strategies: layers, heads, experts, devices', () => {
  it('layer ranges must be contiguous and complete', () => {
    expectFinding(
      variant(tiny, (s) => (s.stages[1].layers = [2, 2])),
      'LAYERS_OUT_OF_RANGE',
      '$.stages[1].layers',
    );
    expectFinding(
      variant(tiny, (s) => (s.stages[0].layers = [1, 1])),
      'LAYERS_GAP',
      '$.stages[0].layers[0]',
    );
    expectFinding(
      variant(tiny, (s) => (s.stages[1].layers = [0, 1])),
      'LAYERS_OVERLAP',
      '$.stages[1].layers[0]',
    );
    const incomplete = variant(tiny, (s) => {
      s.stages = [s.stages[0]];
    });
    expectFinding(incomplete, 'LAYERS_INCOMPLETE', '$.stages[0].layers[1]');
    expectFinding(
      variant(tiny, (s) => (s.stages[1].layers = [1, 0])),
      'LAYERS_RANGE',
      '$.stages[1].layers',
    );
  });

  it('heads against the tensor-parallel group: whole heads per device; a cut KV group is a warning', () => {
    const big = { ...structuredClone(tiny), hardware: { device_count: 8, memory_per_device_bytes: 2 ** 26 } };
    expectFinding(
      variant(big, (s) => (s.stages[0].devices = [0, 1, 4, 5, 6, 7, 2].map((d) => d % 8).slice(0, 7))),
      'HEADS_SPLIT',
      '$.stages[0].devices',
    );
    expectFinding(
      variant(tiny, (s) => (s.stages[0].heads = [4, 1])),
      'HEADS_SIZES',
      '$.stages[0].heads',
    );
    // 6 query heads over 2 KV heads (3 each): [2, 4] cuts the first KV head's group.
    const cut = variant(tiny, (s) => (s.stages[0].heads = [2, 4]));
    expect(hasErrors(cut)).toBe(false);
    expectFinding(cut, 'KV_HEADS_REPEATED', '$.stages[0].heads[1]', 'warning');
    expectFinding(
      variant(tiny, (s) => (s.stages[1].intermediate = [40, 30])),
      'INTERMEDIATE_SIZES',
      '$.stages[1].intermediate',
    );
  });

  it('every expert placed exactly once, on expert groups that divide the stage', () => {
    expectFinding(
      variant(tiny, (s) => (s.stages[0].ep = 2)),
      'EXPERTS_ON_DENSE_MODEL',
      '$.stages[0].ep',
    );
    expectFinding(
      variant(moe, (s) => (s.stages[0].ep = 3)),
      'EP_SPLIT',
      '$.stages[0].ep',
    );
    const place = (experts: number[][]) =>
      variant(moe, (s) => {
        s.stages[0].ep = 2;
        s.stages[0].experts = experts;
      });
    expect(hasErrors(place([[3], [0, 1, 2]]))).toBe(false);
    expectFinding(
      place([
        [0, 1],
        [1, 2],
      ]),
      'EXPERT_PLACED_TWICE',
      '$.stages[0].experts[1][0]',
    );
    expectFinding(place([[0, 1], [2]]), 'EXPERT_NOT_PLACED', '$.stages[0].experts');
    expectFinding(
      place([
        [0, 1],
        [2, 3, 4],
      ]),
      'EXPERT_OUT_OF_RANGE',
      '$.stages[0].experts[1][2]',
    );
    expectFinding(place([[0, 1, 2, 3]]), 'EXPERT_LISTS', '$.stages[0].experts');
  });

  it('devices: in range, one stage each; batch; sequence length; communications', () => {
    expectFinding(
      variant(tiny, (s) => (s.stages[1].devices = [2, 4])),
      'DEVICE_OUT_OF_RANGE',
      '$.stages[1].devices[1]',
    );
    expectFinding(
      variant(tiny, (s) => (s.stages[1].devices = [1, 2])),
      'DEVICE_IN_TWO_STAGES',
      '$.stages[1].devices[0]',
    );
    expectFinding(
      variant(tiny, (s) => (s.batch.microbatches = 3)),
      'BATCH_NOT_DIVISIBLE',
      '$.batch.microbatches',
    );
    expectFinding(
      variant(tiny, (s) => (s.batch.seq_len = 129)),
      'SEQ_TOO_LONG',
      '$.batch.seq_len',
    );
    expectFinding(
      variant(tiny, (s) => (s.communications = [{ name: 'x', op: 'send_recv', from: [0, 1], to: [2] }])),
      'COMMUNICATION_TARGET',
      '$.communications[0].to',
    );
    expectFinding(
      variant(tiny, (s) => (s.communications = [{ name: 'x', op: 'all_reduce', from: [0, 1], to: [2, 3] }])),
      'COMMUNICATION_LAYOUT',
      '$.communications[0].op',
    );
  });

  it('memory per device from weights, KV cache, activations and staging, against the cap', () => {
    const checked = validateModelStrategy(tiny);
    const [m0] = estimateModelMemory(checked.strategy!, checked.source!.config, checked.plans);
    expect(m0!.kvCache).toBeGreaterThan(0);
    expect(m0!.total).toBe(m0!.weights + m0!.kvCache! + m0!.activations + m0!.staging);
    const f = expectFinding(
      variant(tiny, (s) => (s.hardware.memory_per_device_bytes = 65536)),
      'MEMORY_OVER_CAP',
      '$.hardware.memory_per_device_bytes',
    );
    expect(f.message).toContain('KV cache');
  });

  it('warns when one stage carries far more estimated work than the others', () => {
    const s = {
      ...structuredClone(tiny),
      model: { preset: 'llama-small' },
      stages: [
        { name: 'a', devices: [0], layers: [0, 0] },
        { name: 'b', devices: [1], layers: [1, 3] },
      ],
    };
    expectFinding(validateModelStrategy(s).findings, 'LOAD_IMBALANCE', '$.stages[1].layers', 'warning');
  });
});
