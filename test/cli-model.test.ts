import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preset, randomLlamaWeights } from '../src/models/presets.js';
import { cli, ensureBuilt, expectNoStack } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';
import { llamaReferenceGreedy } from './support/llama-reference.js';

let dir = '';
let model = '';

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'webgpu-parallel-cli-model-'));
  model = join(dir, 'tiny');
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('webgpu-parallel make-model', () => {
  it('writes config.json and model.safetensors of a preset', () => {
    const r = cli('make-model', '--preset', 'llama-tiny', '--out', model, '--seed', '3');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('llama-tiny');
    expect(readdirSync(model).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('writes a sharded checkpoint with an index when asked for small files', () => {
    const out = join(dir, 'sharded');
    const r = cli('make-model', '--preset', 'llama-tiny', '--out', out, '--shard-bytes', '64KiB');
    expect(r.status).toBe(0);
    const files = readdirSync(out);
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
  });

  it('refuses to write over a checkpoint: exit 1, the folder named, no stack trace', () => {
    const r = cli('make-model', '--preset', 'llama-tiny', '--out', model);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${model} already holds a checkpoint`);
    expectNoStack(r);
  });

  it('refuses an unknown preset and an unknown dtype, naming the choices', () => {
    const unknown = cli('make-model', '--preset', 'gpt-9', '--out', join(dir, 'x'));
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('llama-tiny');
    expectNoStack(unknown);
    expect(existsSync(join(dir, 'x'))).toBe(false);
    const dtype = cli('make-model', '--preset', 'llama-tiny', '--out', join(dir, 'y'), '--dtype', 'f8');
    expect(dtype.status).toBe(1);
    expect(dtype.stderr).toContain("'f8' is not one of f32, f16, bf16");
    expectNoStack(dtype);
  });
});

describe('webgpu-parallel generate: bad flags', () => {
  it('refuses prompt ids that are not a list of ids', () => {
    for (const bad of ['1,x,3', '1,,3', '1,2,', '-1', '1.5', '1e3']) {
      const r = cli('generate', model, '--prompt-ids', bad);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`'${bad}' is not a comma-separated list of token ids`);
      expectNoStack(r);
    }
  });

  it('refuses a prompt id outside the vocabulary, naming the id and the vocabulary size', () => {
    const r = cli('generate', model, '--prompt-ids', '1,99999', '--backend', TEST_BACKEND);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('99999');
    expect(r.stderr).toContain(String(preset('llama-tiny').vocabSize));
    expectNoStack(r);
  });

  it('refuses a --plan file that is not JSON, or whose stages are malformed', () => {
    const notJson = join(dir, 'plan.txt');
    writeFileSync(notJson, 'stages: two\n');
    const a = cli('generate', model, '--prompt-ids', '1,2', '--plan', notJson);
    expect(a.status).toBe(1);
    expect(a.stderr).toContain(`${notJson}: not JSON`);
    expectNoStack(a);
    const malformed = join(dir, 'plan.json');
    writeFileSync(malformed, JSON.stringify({ stages: [{ devices: 0, layers: 2 }] }));
    const b = cli('generate', model, '--prompt-ids', '1,2', '--plan', malformed);
    expect(b.status).toBe(1);
    expect(b.stderr).toContain('$.stages must be a list of');
    expectNoStack(b);
  });

  it('refuses a missing checkpoint folder and a non-numeric --tp', () => {
    const missing = cli('generate', join(dir, 'nowhere'), '--prompt-ids', '1');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('nowhere');
    expectNoStack(missing);
    const tp = cli('generate', model, '--prompt-ids', '1', '--tp', 'two');
    expect(tp.status).toBe(1);
    expect(tp.stderr).toContain('two');
    expectNoStack(tp);
  });
});

describe.skipIf(!(await webGpuAvailable()))(`webgpu-parallel generate on ${TEST_BACKEND}`, () => {
  const config = preset('llama-tiny');
  const prompts = [
    [1, 2, 3],
    [5, 8, 13, 21, 34],
  ];

  it('decodes the reference greedy ids with TP=2, and reports timings and memory per device', () => {
    const r = cli(
      'generate',
      model,
      ...prompts.flatMap((p) => ['--prompt-ids', p.join(',')]),
      '--max-new-tokens',
      '5',
      '--tp',
      '2',
      '--backend',
      TEST_BACKEND,
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      backend: string;
      tokens: number[][];
      prefill: { tokens: number; tokensPerSecond: number };
      decode: { tokens: number };
      memory: { device: string; parameterBytes: number; kvCacheBytes: number }[];
    };
    expect(out.backend).toBe(TEST_BACKEND);
    const weights = randomLlamaWeights(config, 3);
    expect(out.tokens).toEqual(prompts.map((p) => llamaReferenceGreedy(config, weights, p, 5)));
    expect(out.prefill.tokens).toBe(8);
    expect(out.decode.tokens).toBe(2 * 4);
    expect(out.memory.map((m) => m.device)).toEqual([`${TEST_BACKEND}:0`, `${TEST_BACKEND}:1`]);
    for (const m of out.memory) {
      expect(m.parameterBytes).toBeGreaterThan(0);
      expect(m.kvCacheBytes).toBeGreaterThan(0);
    }
  });

  it('runs a layer plan over two stages and prints the table for people', () => {
    const plan = join(dir, 'two-stages.json');
    writeFileSync(
      plan,
      JSON.stringify({
        stages: [
          { devices: [0], layers: 1 },
          { devices: [1, 2], layers: 1 },
        ],
      }),
    );
    const r = cli(
      'generate',
      model,
      '--prompt-ids',
      prompts[1]!.join(','),
      '--max-new-tokens',
      '3',
      '--plan',
      plan,
      '--backend',
      TEST_BACKEND,
    );
    expect(r.status).toBe(0);
    const ids = llamaReferenceGreedy(config, randomLlamaWeights(config, 3), prompts[1]!, 3);
    expect(r.stdout).toContain(`prompt 0: ${prompts[1]!.join(' ')} -> ${ids.join(' ')}`);
    expect(r.stdout).toMatch(/prefill: 5 tokens in [\d.]+ ms/);
    for (const d of [0, 1, 2]) expect(r.stdout).toContain(`${TEST_BACKEND}:${d}: parameters`);
  });

  it('refuses a KV cache that does not fit the memory cap before running, naming the device', () => {
    const r = cli(
      'generate',
      model,
      '--prompt-ids',
      '1,2,3',
      '--max-new-tokens',
      '100',
      // The parameters take ~175 KiB of it, the cache would need ~26 KiB more.
      '--memory-cap',
      '180KiB',
      '--backend',
      TEST_BACKEND,
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('MEMORY_BUDGET');
    expect(r.stderr).toContain(`${TEST_BACKEND}:0: the KV cache needs`);
    expect(r.stdout).not.toContain('prompt 0:');
    expectNoStack(r);
  });

  it('runs a Mixtral checkpoint with --ep 3, names the most loaded device and expert, and reports busy time', () => {
    const mixtral = join(dir, 'mixtral');
    expect(cli('make-model', '--preset', 'mixtral-tiny', '--out', mixtral, '--seed', '5').status).toBe(0);
    const config = preset('mixtral-tiny');
    const prompt = [4, 8, 15, 16, 23, 42];
    const want = llamaReferenceGreedy(config, randomLlamaWeights(config, 5), prompt, 4);
    const base = ['generate', mixtral, '--prompt-ids', prompt.join(','), '--max-new-tokens', '4'];
    const json = cli(...base, '--ep', '3', '--backend', TEST_BACKEND, '--json');
    expect(json.status).toBe(0);
    const out = JSON.parse(json.stdout) as {
      tokens: number[][];
      plan: string;
      experts: { stages: { perExpert: number[]; busiestGroup: { devices: string[]; rows: number } }[] };
    };
    expect(out.tokens).toEqual([want]);
    expect(out.plan).toBe('[0,1,2] layers 0-1 ep 3');
    // Every token of every step goes to 2 experts in each of the 2 layers.
    const routed = out.experts.stages[0]!.perExpert.reduce((a, b) => a + b, 0);
    expect(routed).toBe((prompt.length + 3) * 2 * 2);
    const text = cli(...base, '--tp', '4', '--ep', '2', '--backend', TEST_BACKEND, '--profile');
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`prompt 0: ${prompt.join(' ')} -> ${want.join(' ')}`);
    expect(text.stdout).toMatch(/most loaded: \[\w+:\d, \w+:\d\] with \d+ rows; expert \d with \d+ tokens/);
    expect(text.stdout).toMatch(new RegExp(`${TEST_BACKEND}:3: parameters .*, busy [\\d.]+ ms`));
  });

  it('refuses an --ep that does not divide --tp, and a capacity factor that is not a number', () => {
    const r = cli('generate', join(dir, 'mixtral'), '--prompt-ids', '1', '--tp', '3', '--ep', '2');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('expert-parallel size 2 does not divide the 3 devices of a stage');
    expectNoStack(r);
    const c = cli('generate', join(dir, 'mixtral'), '--prompt-ids', '1', '--capacity-factor', 'lots');
    expect(c.status).toBe(1);
    expect(c.stderr).toContain("'lots' is not a number above zero");
    expectNoStack(c);
  });
});
