import { ParallelError } from '../../errors.js';

// Read from the package's files under Node, bundled into the page in the browser build (shader-files.browser.ts).
export { loadShader } from './shader-files.js';

const FOR_BLOCK = /\{\{#for ([A-Z]) < ([A-Z_][A-Z0-9_]*)\}\}([\s\S]*?)\{\{\/for \1\}\}/;
const IF_BLOCK = /\{\{#if ([A-Z_][A-Z0-9_]*)\}\}([\s\S]*?)(?:\{\{#else \1\}\}([\s\S]*?))?\{\{\/if \1\}\}/;
const VALUE = /\{\{([A-Z_][A-Z0-9_]*)\}\}/g;

/**
 * The one template step, for what override constants cannot express: code unrolled over a register tile
 * (lavapipe keeps private arrays in memory, and a subgroup broadcast needs a constant lane). It knows
 * three forms: `{{NAME}}` (a non-negative integer), `{{#for I < NAME}}…{{/for I}}` (the body repeated with
 * `{{I}}` = 0, 1, …) and `{{#if NAME}}…{{#else NAME}}…{{/if NAME}}` (NAME non-zero). Every value given must
 * be used and every placeholder filled, so a variant key that names a parameter always changes the code.
 */
export function specialize(name: string, code: string, values: Readonly<Record<string, number>>): string {
  const used = new Set<string>();
  const fail = (message: string): never => {
    throw new ParallelError('SHADER_COMPILE', `shader ${name}: ${message}`);
  };
  const valueFor = (key: string): number => {
    const value = values[key];
    if (value === undefined || !Number.isSafeInteger(value) || value < 0) {
      return fail(`template value ${key} must be a non-negative integer, got ${value}`);
    }
    used.add(key);
    return value;
  };
  const expand = (text: string, locals: Readonly<Record<string, number>>): string => {
    // Branches first: a loop inside a branch not taken must not ask for its count.
    for (;;) {
      const branch = IF_BLOCK.exec(text);
      if (!branch) break;
      const [whole, key, yes, no = ''] = branch as unknown as [string, string, string, string | undefined];
      text = text.replace(whole, () => (valueFor(key) !== 0 ? yes : no));
    }
    for (;;) {
      const loop = FOR_BLOCK.exec(text);
      if (!loop) break;
      const [whole, index, countKey, body] = loop as unknown as [string, string, string, string];
      const copies = Array.from({ length: valueFor(countKey) }, (_, i) =>
        expand(body, { ...locals, [index]: i }),
      );
      text = text.replace(whole, () => copies.join(''));
    }
    return text.replace(VALUE, (_, key: string) => String(locals[key] ?? valueFor(key)));
  };
  const out = expand(code, {});
  if (/\{\{/.test(out))
    fail(`unbalanced template block near '${out.slice(out.indexOf('{{'), out.indexOf('{{') + 40)}'`);
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) fail(`template values ${unused.join(', ')} are not used`);
  return out;
}
