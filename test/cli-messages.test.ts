import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAtomically } from '../src/cli/files.js';
import { isParallelError } from '../src/errors.js';
import { cli, ensureBuilt, expectNoStack, root } from './support/cli.js';

/** What a user who mistypes sees: the value quoted as given, one message per mistake, and the place. */
const seedFits = JSON.parse(readFileSync(join(root, 'examples/seed-fits.json'), 'utf8'));
let dir = '';

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'wgp-messages-'));
}, 120_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function strategyFile(name: string, value: unknown, prefix = ''): string {
  const file = join(dir, name);
  writeFileSync(file, prefix + JSON.stringify(value));
  return file;
}

function withMemory(memory: unknown) {
  return { ...seedFits, hardware: { ...seedFits.hardware, memory_per_device_bytes: memory } };
}

describe('CLI messages', () => {
  it('quotes a bad --seed as typed', () => {
    const r = cli('run', 'examples/seed-fits.json', '--seed', 'abc');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("'abc' is not an integer of 0 or more");
    expect(r.stderr).not.toContain('NaN');
  });

  it('says a memory cap in the file is a number of bytes, and gives one message per limit', () => {
    const text = cli('validate', strategyFile('m1.json', withMemory('64MiB'))).stdout;
    expect(text).toContain('must be a number of bytes (e.g. 67108864 for 64 MiB), got "64MiB"');
    const huge = cli('validate', strategyFile('m2.json', withMemory(1e308))).stdout;
    expect(huge.match(/at \$\.hardware\.memory_per_device_bytes/g)).toHaveLength(1);
    expect(huge).toContain('at most 2^46 bytes');
  });

  it('names a UTF-8 byte order mark', () => {
    const r = cli('validate', strategyFile('bom.json', seedFits, '\uFEFF'));
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('JSON_BOM at $');
  });

  it('validate --json prints JSON for a file that cannot be read', () => {
    const r = cli('validate', join(dir, 'missing.json'), '--json');
    expect(r.status).toBe(1);
    const out = JSON.parse(r.stdout) as { valid: boolean; error: { code: string; message: string } };
    expect(out.valid).toBe(false);
    expect(out.error.code).toBe('IO');
    expect(out.error.message).toContain('no such file');
  });

  it('escapes control characters of names in terminal output', () => {
    const stages = seedFits.stages.map((s: { name: string }, i: number) =>
      i === 0 ? { ...s, name: 'emb\u001b[31m' } : s,
    );
    const r = cli('validate', strategyFile('ctl.json', { ...seedFits, stages }));
    expect(r.stdout).toContain('emb\\u001b[31m');
    expect(r.stdout).not.toContain('\u001b');
  });

  it('warns of a device that data_parallel overrides', () => {
    const stages = seedFits.stages.map((s: object, i: number) =>
      i === seedFits.stages.length - 1 ? { ...s, device: 0 } : s,
    );
    const r = cli('validate', strategyFile('dp.json', { ...seedFits, stages }));
    expect(r.stdout).toMatch(/warning DEVICE_IGNORED at \$\.stages\[\d+\]\.device/);
  });
});

describe('output paths', () => {
  it('are checked before the run: a missing folder or a folder as the file exits 1 at once', () => {
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    for (const [flag, path, says] of [
      ['-o', join(dir, 'no/such/r.md'), 'no such file or folder'],
      ['--trace', folder, 'it is a folder'],
      ['--save-weights', join(dir, 'no/w.json'), 'no such file or folder'],
    ] as const) {
      const started = performance.now();
      const r = cli('run', 'examples/seed-fits.json', '--no-progress', flag, path);
      expect(r.status, flag).toBe(1);
      expect(r.stderr).toContain(`error IO: ${flag} ${path}`);
      expect(r.stderr).toContain(says);
      expectNoStack(r);
      // Refused before the devices open: a run of seed-fits takes seconds.
      expect(performance.now() - started).toBeLessThan(20_000);
    }
  }, 90_000);

  it('a failed write leaves no temporary file behind', () => {
    const target = join(dir, 'is-a-folder');
    mkdirSync(target);
    let error: unknown;
    try {
      writeAtomically(target, 'text');
    } catch (e) {
      error = e;
    }
    expect(isParallelError(error, 'IO')).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(existsSync(`${target}.${process.pid}.tmp`)).toBe(false);
  });
});
