import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStrategy } from '../src/strategy/run-strategy.js';
import { buildWeb } from '../web/build.js';
import { findChromium, type PageRunResult, PageSession } from '../web/drive.js';
import { chainOnDevices, presetStrategy } from '../web/strategy-for-count.js';
import { root } from './support/cli.js';
import { TEST_BACKEND, webGpuAvailable } from './support/devices.js';

/**
 * The page in a real browser: Debian's chromium, headless, WebGPU on its SwiftShader Vulkan adapter. Runs
 * with the WebGPU pass of the tests (the page has no gpu.js fallback). In CI a missing browser or adapter
 * is a failure, never a skip.
 */
const chromiumPath = findChromium();
if (!chromiumPath && process.env.CI && TEST_BACKEND === 'webgpu') {
  throw new Error('CI is set but no chromium was found: apt-get install chromium (or set CHROMIUM_PATH)');
}
const outputDir = join(root, 'dist', 'test-output', 'browser');

describe('the browser bundle', () => {
  it('holds nothing of Node or Dawn: every Node-only module is replaced by its .browser.ts twin', async () => {
    const built = await buildWeb(join(root, 'dist', 'test-output', 'page-bundle'));
    const nodeOnly = built.inputs.filter(
      (f) => /node_modules\/(webgpu|gpu\.js)\//.test(f) || f.startsWith('node:'),
    );
    expect(nodeOnly).toEqual([]);
    for (const twin of [
      'src/runtime/webgpu/open-webgpu.browser.ts',
      'src/kernels/webgpu/shader-files.browser.ts',
      'src/runtime/host-info.browser.ts',
      'src/strategy/checkpoint-source.browser.ts',
    ]) {
      expect(built.inputs).toContain(twin);
    }
    for (const nodeSide of ['src/runtime/webgpu/open-webgpu.ts', 'src/kernels/webgpu/shader-files.ts']) {
      expect(built.inputs).not.toContain(nodeSide);
    }
    // The shaders are in the bundle: a kernel's WGSL entry point appears in the code.
    const bundle = Object.keys(built.outputs)
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(built.outDir, f), 'utf8'))
      .join('\n');
    expect(bundle).toContain('@compute');
  });
});

describe.skipIf(TEST_BACKEND !== 'webgpu' || (!chromiumPath && !process.env.CI))(
  'the page in chromium',
  () => {
    let session: PageSession;
    let nodeHasAdapter = false;

    beforeAll(async () => {
      nodeHasAdapter = await webGpuAvailable();
      mkdirSync(outputDir, { recursive: true });
      session = await PageSession.open(chromiumPath!, join(root, 'dist', 'test-output', 'page'));
      const adapter = await session.adapter();
      if (!adapter) {
        throw new Error(
          `chromium gave the page no WebGPU adapter (flags in web/drive.ts): ${session.log.join('\n')}`,
        );
      }
    }, 60_000);

    afterAll(async () => {
      await session?.close();
    });

    let seedFitsUnderNode: Promise<Float32Array[]> | undefined;

    /** The same strategy under Node, the outputs of its first measured run. */
    async function nodeOutputs(strategy: unknown): Promise<Float32Array[]> {
      let outputs: readonly Float32Array[] = [];
      await runStrategy(structuredClone(strategy), {
        backend: nodeHasAdapter ? 'webgpu' : 'cpu',
        repeats: 1,
        sequentialBaseline: false,
        onOutputs: (got) => {
          outputs = got;
        },
      });
      return [...outputs];
    }

    function expectSameOutputs(page: PageRunResult, node: readonly Float32Array[], tolerance: number): void {
      expect(page.outputs.length).toBe(node.length);
      let worst = 0;
      page.outputs.forEach((got, mb) => {
        expect(got.length).toBe(node[mb]!.length);
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - node[mb]![i]!));
      });
      expect(worst).toBeLessThanOrEqual(tolerance);
    }

    async function expectTimelineDrawn(devices: number, microbatches: number): Promise<void> {
      const page = session.page;
      await expect(page.locator('.wp-verdict').textContent()).resolves.toMatch(/^Verdict: SOUND/);
      // A lane per device plus the host's, bars of every microbatch, a bar per device for utilization and memory.
      expect(await page.locator('svg.wp-timeline text.wp-lane').count()).toBe(devices + 1);
      expect(await page.locator('svg.wp-timeline rect.wp-kernel').count()).toBeGreaterThan(devices);
      expect(await page.locator('svg.wp-timeline rect.wp-transfer').count()).toBeGreaterThan(0);
      const mbs = await page
        .locator('svg.wp-timeline rect.wp-kernel')
        .evaluateAll((rects) => [...new Set(rects.map((r) => r.getAttribute('data-mb')))].length);
      expect(mbs).toBe(microbatches);
      expect(await page.locator('tr.wp-device').count()).toBe(devices);
      expect(await page.locator('svg.wp-timeline .wp-axis text').count()).toBeGreaterThan(2);
    }

    for (const devices of [2, 3]) {
      it(`runs seed-fits on ${devices} devices: the report's check passes and the outputs equal Node's run of the file`, async () => {
        const strategy = await session.choose('chain:seed-fits', devices);
        const seedFits = JSON.parse(readFileSync(join(root, 'examples/seed-fits.json'), 'utf8'));
        expect(strategy).toEqual(JSON.parse(JSON.stringify(chainOnDevices(seedFits, devices))));
        const page = await session.run({ strategy });
        expect(page.report.checks.every((c) => c.passed)).toBe(true);
        expect(page.report.verdict).toMatch(/^SOUND/);
        // Moving the stages onto other devices leaves the model, its weights and its ids as they were: one
        // Node run of the file is the reference for both device counts.
        seedFitsUnderNode ??= nodeOutputs(seedFits);
        expectSameOutputs(page, await seedFitsUnderNode, 1e-4);
        await expectTimelineDrawn(devices, 8);
        const shot = join(outputDir, `seed-fits-${devices}.png`);
        await session.page.screenshot({ path: shot, fullPage: true });
        expect(statSync(shot).size).toBeGreaterThan(10_000);
      });

      it(`runs the llama-tiny preset on ${devices} devices: both of the report's checks pass, the logits equal Node's`, async () => {
        const strategy = await session.choose('preset:llama-tiny', devices);
        expect(strategy).toEqual(presetStrategy('llama-tiny', devices));
        const page = await session.run({ strategy });
        expect(page.report.checks.map((c) => c.passed)).toEqual([true, true]);
        expectSameOutputs(page, await nodeOutputs(strategy), page.report.checks[0]!.tolerance);
        await expectTimelineDrawn(devices, 2);
        await session.page.screenshot({ path: join(outputDir, `llama-tiny-${devices}.png`), fullPage: true });
      });
    }

    it("imports the library's browser bundle in the page, whose host sum is WebAssembly SIMD", async () => {
      const result = (await session.page.evaluate(`(async () => {
      const lib = await import('./webgpu-parallel.js');
      const ctx = new lib.CollectiveContext({ reduceOn: 'host' });
      const n = 100003;
      const inputs = [1, 2, 3, 4].map((k) => Float32Array.from({ length: n }, (_, i) => k * ((i % 97) - 48)));
      const sum = ctx.hostSum;
      if (!sum) return { wasm: false };
      const got = sum.sum(inputs, n);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - 10 * ((i % 97) - 48)));
      ctx.destroy();
      return { wasm: true, worst, presets: lib.presetNames() };
    })()`)) as { wasm: boolean; worst?: number; presets?: string[] };
      expect(result.wasm).toBe(true);
      expect(result.worst).toBe(0);
      expect(result.presets).toContain('llama-tiny');
    });

    it('reports a checkpoint strategy as a finding: a page has no file system', async () => {
      const strategy = { ...presetStrategy('llama-tiny', 2), model: { checkpoint: 'ckpt' } };
      await session.showStrategy();
      await session.page.fill('#strategy', JSON.stringify(strategy));
      await session.page.click('#run');
      await session.page.waitForFunction("document.body.dataset.state === 'error'");
      expect(await session.page.textContent('#status')).toMatch(/MODEL_CHECKPOINT: .*no file system/);
    });
  },
);
