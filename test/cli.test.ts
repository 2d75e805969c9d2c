import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, ensureBuilt, expectNoStack, root } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

let dir = '';

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'webgpu-parallel-cli-'));
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('webgpu-parallel validate', () => {
  it('rejects the seed: exit 1, MEMORY_OVER_CAP against the 16 MiB cap', () => {
    const r = cli('validate', 'examples/seed-strategy.json');
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('MEMORY_OVER_CAP');
    expect(r.stdout).toContain('16 MiB');
    expect(r.stdout).toContain('examples/seed-strategy.json: not valid');
    expectNoStack(r);
  });

  it('prints the findings as JSON with --json', () => {
    const r = cli('validate', 'examples/seed-strategy.json', '--json');
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { valid: boolean; findings: { code: string; severity: string }[] };
    expect(out.valid).toBe(false);
    expect(out.findings.filter((f) => f.severity === 'error').map((f) => f.code)).toContain(
      'MEMORY_OVER_CAP',
    );
  });

  it('accepts seed-fits.json: exit 0', () => {
    const r = cli('validate', 'examples/seed-fits.json');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('examples/seed-fits.json: valid');
  });

  it('reports malformed JSON with its line, exit 1, no stack trace', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{\n  "hardware": { "device_count": 3, },\n}\n');
    const r = cli('validate', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('JSON_SYNTAX');
    expect(r.stdout).toContain('line 2');
    expectNoStack(r);
  });

  it('reports a missing file, exit 1, no stack trace', () => {
    const r = cli('validate', join(dir, 'nothing-here.json'));
    expect(r.status).toBe(1);
    expect(`${r.stdout}${r.stderr}`).toContain('no such file');
    expectNoStack(r);
  });
});

describe('webgpu-parallel schema, info, run', () => {
  it('schema prints JSON Schema with the stages', () => {
    const r = cli('schema');
    expect(r.status).toBe(0);
    const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown> };
    expect(schema.properties.stages).toBeDefined();
    expect(schema.properties.communications).toBeDefined();
  });

  it('info exits 0', () => {
    const r = cli('info');
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    expectNoStack(r);
  });

  it('run on a garbage file: exit 1, no stack trace, no report written', () => {
    const file = join(dir, 'garbage.json');
    const out = join(dir, 'report.md');
    writeFileSync(file, 'this is not a strategy\n');
    const r = cli('run', file, '--out', out, '--no-progress');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('JSON_SYNTAX');
    expect(r.stderr).toContain('nothing was run');
    expectNoStack(r);
    expect(existsSync(out)).toBe(false);
  });

  it('run on a file that is valid JSON but not a valid strategy: exit 1, no report written', () => {
    const file = join(dir, 'invalid.json');
    const out = join(dir, 'report2.md');
    writeFileSync(file, JSON.stringify({ stages: [] }));
    const r = cli('run', file, '--out', out, '--no-progress');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('SCHEMA_');
    expectNoStack(r);
    expect(existsSync(out)).toBe(false);
  });
});

describe('webgpu-parallel validate on model strategies', () => {
  it.each(['examples/llama-tp-pp.json', 'examples/mixtral-ep.json', 'examples/llama-unbalanced.json'])(
    'accepts %s: exit 0',
    (file) => {
      const r = cli('validate', file);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`${file}: valid`);
    },
  );

  it('names a gap in the layer ranges with its JSON path and fix, exit 1', () => {
    const file = join(dir, 'gap.json');
    writeFileSync(
      file,
      JSON.stringify({ ...tinyModelStrategy(), stages: [{ name: 'a', devices: [0], layers: [1, 1] }] }),
    );
    const r = cli('validate', file);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('LAYERS_GAP at $.stages[0].layers[0]');
    expect(r.stdout).toContain('fix: start this stage at layer 0');
    expectNoStack(r);
  });
});

/** llama-tiny over 2 tensor-parallel stages of 2 devices, one sequence a microbatch. */
function tinyModelStrategy() {
  return {
    name: 'tiny model strategy',
    hardware: { device_count: 4, memory_per_device_bytes: 64 * 2 ** 20 },
    model: { preset: 'llama-tiny' },
    batch: { batch_size: 4, seq_len: 8, microbatches: 4 },
    stages: [
      { name: 'front', devices: [0, 1], layers: [0, 0] },
      { name: 'back', devices: [2, 3], layers: [1, 1] },
    ],
  };
}

describe.skipIf(!(await webGpuAvailable()))('webgpu-parallel run and improve on a model strategy', () => {
  it(`run: the logits checks pass on ${TEST_BACKEND}, exit 0`, () => {
    const file = join(dir, 'tiny-model.json');
    writeFileSync(file, JSON.stringify(tinyModelStrategy()));
    const r = cli('run', file, '--json', '--no-progress', '--backend', TEST_BACKEND, '--no-baseline');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as { verdict: string; checks: { passed: boolean }[] };
    expect(report.verdict).toBe('SOUND');
    expect(report.checks.length).toBe(2);
    expect(report.checks.every((c) => c.passed)).toBe(true);
  });

  it('improve: reports before and after, writes a valid improved file', () => {
    const file = join(dir, 'tiny-improve.json');
    const out = join(dir, 'tiny-improve.better.json');
    writeFileSync(file, JSON.stringify(tinyModelStrategy()));
    const r = cli('improve', file, '-o', out, '--no-progress', '--backend', TEST_BACKEND, '--repeats', '2');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`# Improving ${file}`);
    if (r.stdout.includes('## Before and after')) {
      expect(r.stdout).toMatch(/\*\*Speedup [\d.]+×\*\*/);
      expect(existsSync(out)).toBe(true);
      expect(cli('validate', out).status).toBe(0);
    } else expect(r.stdout).toContain('No improved strategy');
    expectNoStack(r);
  });
});

describe.skipIf(!(await webGpuAvailable()))('the library example', () => {
  it(`runs a Megatron MLP over 2 ${TEST_BACKEND} devices through the public entry point, matching the reference`, () => {
    const r = spawnSync(
      process.execPath,
      [join(root, 'examples/megatron-mlp.mjs'), '--backend', TEST_BACKEND],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`backend ${TEST_BACKEND}, devices ${TEST_BACKEND}:0, ${TEST_BACKEND}:1`);
    // The row-parallel layer's all-reduce is the only transfer: 2 partials of [64, 256] f32 up, 2 sums down.
    expect(r.stdout).toContain('host bytes moved: 131072 to the host, 131072 back');
    const error = Number(/max \|error\| against the CPU reference: (\S+)/.exec(r.stdout)?.[1]);
    expect(error).toBeLessThanOrEqual(1e-4);
  });
});
