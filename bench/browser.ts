import { readFileSync } from 'node:fs';
import { runStrategy } from '../src/strategy/run-strategy.js';
import { findChromium, PageSession } from '../web/drive.js';
import { presetStrategy } from '../web/strategy-for-count.js';
import type { BenchSink } from './record.js';
import { median } from './record.js';

/** The strategies timed on both sides: the seed's fitting chain as the file has it, and a small Llama. */
function strategies(): { name: string; strategy: unknown }[] {
  const seedFits = JSON.parse(
    readFileSync(new URL('../../examples/seed-fits.json', import.meta.url), 'utf8'),
  );
  return [
    { name: 'seed-fits (3 devices)', strategy: seedFits },
    { name: 'llama-tiny (3 devices)', strategy: presetStrategy('llama-tiny', 3) },
  ];
}

/**
 * The same strategy's step (one batch through the pipeline, the median of the measured runs) under Node
 * (Dawn on the machine's Vulkan driver) and in headless Chromium (the page, WebGPU on its SwiftShader),
 * each checked against the reference by its own report. Needs Debian's chromium: not in the default suites.
 */
export async function runBrowserBench(sink: BenchSink, options: { quick?: boolean } = {}): Promise<void> {
  const executable = findChromium();
  if (!executable)
    throw new Error('the browser suite needs chromium: apt-get install chromium (or CHROMIUM_PATH)');
  const repeats = options.quick ? 1 : 3;
  const session = await PageSession.open(executable);
  try {
    const browserAdapter = (await session.adapter()) ?? 'none';
    for (const { name, strategy } of strategies()) {
      const node = await runStrategy(structuredClone(strategy), {
        backend: 'webgpu',
        repeats,
        sequentialBaseline: false,
      });
      const page = await session.run({ strategy, repeats, timeoutMs: 600_000 });
      const nodeMs = median(node.repeatsMeasured.map((r) => r.wallMs));
      const pageMs = median([...page.report.repeatWallMs]);
      sink({
        suite: 'browser',
        name,
        backend: 'webgpu',
        adapter: `${node.adapter} | ${browserAdapter.replace(/^WebGPU adapter: /, '')}`,
        repeats,
        node_ms: nodeMs,
        median_ms: pageMs,
        browser_vs_node: pageMs / nodeMs,
        node_predicted_ms: node.pipelined.predictedMs,
        browser_predicted_ms: page.report.pipelined.predictedMs,
        checked: node.checks.every((c) => c.passed) && page.report.checks.every((c) => c.passed),
      });
    }
  } finally {
    await session.close();
  }
}
