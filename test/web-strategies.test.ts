import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasErrors } from '../src/strategy/findings.js';
import { validateStrategy } from '../src/strategy/validate.js';
import { chainOnDevices, presetStrategy } from '../web/strategy-for-count.js';
import { root } from './support/cli.js';

/** The strategies the page writes for a device count are valid files, the same stages on other devices. */
const chains = readdirSync(join(root, 'examples'))
  .filter((f) => f.endsWith('.json') && f !== 'seed-strategy.json')
  .map((f) => ({ file: f, json: JSON.parse(readFileSync(join(root, 'examples', f), 'utf8')) }))
  .filter(({ json }) => json.model.preset === undefined && json.model.checkpoint === undefined);

describe("the page's strategies for a device count", () => {
  for (const { file, json } of chains) {
    for (const count of [1, 2, 3, 4]) {
      it(`${file} folded onto ${count} devices validates`, () => {
        const folded = chainOnDevices(json, count);
        const findings = validateStrategy(folded).findings;
        expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
        expect((folded.stages as unknown[]).length).toBe(json.stages.length);
      });
    }
  }

  it('folds seed-fits onto 2 devices as d mod 2', () => {
    const seedFits = chains.find((c) => c.file === 'seed-fits.json')!.json;
    const folded = chainOnDevices(seedFits, 2) as { communications: { from: number[]; to: number[] }[] };
    expect(folded.communications.map((c) => [c.from, c.to])).toEqual([
      [
        [0, 1],
        [1, 0],
      ],
      [[1, 0], [0]],
    ]);
    expect(chainOnDevices(seedFits, 3)).toBe(seedFits);
  });

  for (const name of ['llama-tiny', 'llama-small', 'mixtral-tiny']) {
    for (const count of [1, 2, 3, 4]) {
      if (name === 'llama-small' && count === 1) continue;
      it(`${name} on ${count} devices validates`, () => {
        expect(hasErrors(validateStrategy(presetStrategy(name, count)).findings)).toBe(false);
      });
    }
  }

  it('leaves llama-small on one device to the validator: 78 MiB over the 64 MiB cap', () => {
    const errors = validateStrategy(presetStrategy('llama-small', 1)).findings.filter(
      (f) => f.severity === 'error',
    );
    expect(errors.map((f) => f.code)).toEqual(['MEMORY_OVER_CAP']);
  });
});
