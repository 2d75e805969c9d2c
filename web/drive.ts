import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { buildWeb } from './build.js';
import { type StaticServer, serveStatic } from './server.js';

/**
 * Flags that give headless Chromium WebGPU on a machine without a GPU: Debian's chromium then answers with
 * its SwiftShader Vulkan adapter. The developer features turn off timestamp quantization (100 us otherwise),
 * as Dawn's flag does under Node. Root (CI) needs --no-sandbox.
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--enable-unsafe-webgpu',
  '--enable-webgpu-developer-features',
  '--no-sandbox',
];

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The system browser to drive: $CHROMIUM_PATH, else Debian's and others' usual paths; null if none. */
export function findChromium(env: Readonly<Record<string, string | undefined>> = process.env): string | null {
  if (env.CHROMIUM_PATH) return existsSync(env.CHROMIUM_PATH) ? env.CHROMIUM_PATH : null;
  return CANDIDATES.find((path) => existsSync(path)) ?? null;
}

/** What the page keeps of a run (web/main.ts's PageRun), as it comes back over the wire. */
export interface PageRunResult {
  readonly report: {
    readonly verdict: string;
    readonly checks: readonly { against: string; maxAbsError: number; tolerance: number; passed: boolean }[];
    readonly pipelined: { readonly wallMs: number; readonly predictedMs: number };
    readonly repeatWallMs: readonly number[];
    readonly adapter: string;
    readonly [key: string]: unknown;
  };
  readonly outputs: readonly number[][];
  readonly totalMs: number;
}

export interface RunInPage {
  /** A strategy file's JSON. */
  readonly strategy: unknown;
  readonly repeats?: number;
  readonly baseline?: boolean;
  readonly timeoutMs?: number;
}

/** The built page in headless Chromium, served on loopback. */
export class PageSession {
  private constructor(
    readonly browser: Browser,
    readonly page: Page,
    private readonly server: StaticServer,
    /** What the page printed to its console and its uncaught errors, for a failing test's message. */
    readonly log: string[],
  ) {}

  static async open(executablePath: string, outDir?: string): Promise<PageSession> {
    const built = await buildWeb(outDir);
    const server = await serveStatic(built.outDir);
    let browser: Browser | null = null;
    try {
      browser = await chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_FLAGS] });
      const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
      const log: string[] = [];
      page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
      await page.goto(server.url);
      await page.waitForFunction("['idle', 'error'].includes(document.body.dataset.state)", null, {
        timeout: 30_000,
      });
      return new PageSession(browser, page, server, log);
    } catch (error) {
      await browser?.close();
      await server.close();
      throw error;
    }
  }

  /** The adapter line the page shows, or null when the page found no WebGPU adapter. */
  async adapter(): Promise<string | null> {
    const state = await this.page.evaluate('document.body.dataset.state');
    return state === 'error' ? null : await this.page.textContent('#adapter');
  }

  /** Picks an example (`chain:seed-fits`, `preset:llama-tiny`) and a device count as a person would; the strategy the page wrote. */
  async choose(example: string, devices: number): Promise<unknown> {
    await this.page.selectOption('#example', example);
    await this.page.fill('#devices', String(devices));
    await this.page.dispatchEvent('#devices', 'change');
    return JSON.parse(await this.page.inputValue('#strategy'));
  }

  /** Puts the strategy into the page's text box, runs it with the page's button and returns its result. */
  async run(options: RunInPage): Promise<PageRunResult> {
    const page = this.page;
    await this.showStrategy();
    await page.fill('#strategy', JSON.stringify(options.strategy, null, 2));
    await page.fill('#repeats', String(options.repeats ?? 1));
    await page.setChecked('#baseline', options.baseline ?? false);
    // The click handler marks the page 'running' before its first await, so 'done' is this run's.
    await page.click('#run');
    await page.waitForFunction("['done', 'error'].includes(document.body.dataset.state)", null, {
      timeout: options.timeoutMs ?? 120_000,
    });
    const result = (await page.evaluate('window.lastRun ?? null')) as PageRunResult | null;
    if (!result) throw new Error(`the page's run failed: ${await page.textContent('#status')}`);
    return result;
  }

  /** Opens the folded-away text box of the strategy file, so it can be typed into. */
  async showStrategy(): Promise<void> {
    await this.page.evaluate("document.getElementById('strategy').closest('details').open = true");
  }

  async close(): Promise<void> {
    await this.browser.close();
    await this.server.close();
  }
}
