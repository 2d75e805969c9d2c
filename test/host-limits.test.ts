import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkStrategy } from '../src/strategy/check-strategy.js';
import { estimateChainHostMemory, hostMemoryFindings } from '../src/strategy/host-memory.js';
import type { Strategy } from '../src/strategy/schema.js';
import { cli, ensureBuilt, expectNoStack, root } from './support/cli.js';

const seedFits = JSON.parse(readFileSync(join(root, 'examples/seed-fits.json'), 'utf8'));
const llama = JSON.parse(readFileSync(join(root, 'examples/llama-tp-pp.json'), 'utf8'));
const huge = { ...seedFits, batch: { batch_size: 1_000_000_000, microbatches: 1_000_000_000 } };

describe('host work limits, before the run', () => {
  it('refuses a batch whose host buffers or schedule would not fit, naming the field', () => {
    const findings = checkStrategy(huge).findings.filter((f) => f.code.startsWith('HOST_'));
    expect(findings.map((f) => [f.code, f.severity, f.path])).toEqual([
      ['HOST_MEMORY', 'error', '$.batch.batch_size'],
      ['HOST_SCHEDULE', 'error', '$.batch.microbatches'],
    ]);
    const model = { ...llama, batch: { batch_size: 4_000_000, seq_len: 32, microbatches: 4_000_000 } };
    expect(checkStrategy(model).findings.map((f) => f.code)).toEqual(
      expect.arrayContaining(['HOST_MEMORY', 'HOST_SCHEDULE']),
    );
  });

  it('passes every example, and scales its estimate with the batch', () => {
    for (const file of ['seed-fits.json', 'megatron-mlp.json', 'llama-tp-pp.json', 'mixtral-ep.json']) {
      const value = JSON.parse(readFileSync(join(root, 'examples', file), 'utf8'));
      expect(checkStrategy(value).findings.filter((f) => f.code.startsWith('HOST_'))).toEqual([]);
    }
    const checked = checkStrategy(seedFits);
    if (checked.family !== 'chain') throw new Error('seed-fits is a chain');
    const strategy = checked.strategy as Strategy;
    const one = estimateChainHostMemory(strategy, checked.plans);
    const twice = estimateChainHostMemory(
      { ...strategy, batch: { ...strategy.batch, batch_size: strategy.batch.batch_size * 2 } },
      checked.plans,
    );
    expect(twice.buffersBytes).toBeGreaterThan(1.9 * one.buffersBytes);
    const small = { buffersBytes: one.buffersBytes, heapBytes: one.heapBytes };
    expect(hostMemoryFindings(one, small).map((f) => f.code)).toEqual(['HOST_MEMORY', 'HOST_SCHEDULE']);
    expect(
      hostMemoryFindings(one, { buffersBytes: 4 * one.buffersBytes, heapBytes: 8 * one.heapBytes }),
    ).toEqual([]);
  });

  it('the CLI says so and exits 1 at once, validate and run alike, with no stack', () => {
    ensureBuilt();
    const file = join(mkdtempSync(join(tmpdir(), 'wgp-host-')), 'huge.json');
    writeFileSync(file, JSON.stringify(huge));
    for (const args of [['validate'], ['run', '--no-progress']]) {
      const r = cli(args[0]!, file, ...args.slice(1));
      expect(r.status).toBe(1);
      expect(r.stdout + r.stderr).toContain('HOST_MEMORY at $.batch.batch_size');
      expectNoStack(r);
    }
  }, 60_000);
});
