import { ParallelError } from '../../errors.js';

/**
 * What the page's bundle has in place of the npm package `webgpu` (Dawn's node bindings, a native addon that
 * cannot run in a page). Loading it fails with the typed error dawn.ts reports; the page's devices come from
 * navigator.gpu (open-webgpu.browser.ts) and never ask for it.
 */
throw new ParallelError('NO_ADAPTER', "Dawn's node bindings do not run in a browser", {
  fix: 'in the page, devices come from navigator.gpu: do not name adapters or Dawn backends',
});
