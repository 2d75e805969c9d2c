import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { strategyJsonSchema } from '../src/strategy/schema.js';

describe('strategy.schema.json', () => {
  it('is the JSON Schema the code defines (regenerate: webgpu-parallel schema > strategy.schema.json)', () => {
    const file = JSON.parse(readFileSync(new URL('../strategy.schema.json', import.meta.url), 'utf8'));
    expect(file).toEqual(JSON.parse(JSON.stringify(strategyJsonSchema())));
  });
});
