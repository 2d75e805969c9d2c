import {
  isParallelError,
  reportJson,
  reportMarkdown,
  runStrategy,
  type StrategyRun,
  TIMELINE_SCRIPT,
  TIMELINE_STYLE,
  timelineData,
  timelineSection,
} from '../src/browser.js';
import { CHAIN_EXAMPLES, MODEL_PRESETS } from './examples.js';
import { chainOnDevices, presetStrategy } from './strategy-for-count.js';

/** What the page keeps of its last run, for people (window.lastRun in the console) and for the tests. */
export interface PageRun {
  readonly report: Record<string, unknown>;
  /** Each microbatch's output (chains: the last stage's; models: the logits), as plain arrays. */
  readonly outputs: readonly number[][];
  /** Wall time of the whole runStrategy call, in the page. */
  readonly totalMs: number;
}

declare global {
  interface Window {
    lastRun?: PageRun;
    lastError?: { code?: string; message: string };
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const example = $<HTMLSelectElement>('example');
const devices = $<HTMLInputElement>('devices');
const repeats = $<HTMLInputElement>('repeats');
const baseline = $<HTMLInputElement>('baseline');
const strategyText = $<HTMLTextAreaElement>('strategy');
const runButton = $<HTMLButtonElement>('run');
const status = $<HTMLDivElement>('status');
const result = $<HTMLDivElement>('result');

function setStatus(text: string, state: 'idle' | 'running' | 'done' | 'error'): void {
  status.textContent = text;
  status.className = state === 'error' ? 'error' : '';
  document.body.dataset.state = state;
}

function fillChoices(): void {
  const group = (label: string, values: [string, string][]) => {
    const g = document.createElement('optgroup');
    g.label = label;
    for (const [value, text] of values) g.append(new Option(text, value));
    example.append(g);
  };
  group(
    'Chains (examples/)',
    Object.keys(CHAIN_EXAMPLES).map((name) => [`chain:${name}`, `${name}.json`]),
  );
  group(
    'Model presets',
    MODEL_PRESETS.map((name) => [`preset:${name}`, `${name} (model: {preset})`]),
  );
}

/** The strategy file for the picked example and device count, into the editable text box. */
function writeStrategy(fromExample: boolean): void {
  const [form, name] = example.value.split(':') as [string, string];
  if (form === 'chain') {
    const file = CHAIN_EXAMPLES[name]!;
    if (fromExample) devices.value = String((file.hardware as { device_count: number }).device_count);
    strategyText.value = JSON.stringify(chainOnDevices(file, Number(devices.value)), null, 2);
  } else {
    strategyText.value = JSON.stringify(presetStrategy(name, Number(devices.value)), null, 2);
  }
}

async function run(): Promise<void> {
  runButton.disabled = true;
  result.replaceChildren();
  $<HTMLElement>('markdown-box').hidden = true;
  window.lastRun = undefined;
  window.lastError = undefined;
  setStatus('Running…', 'running');
  let outputs: readonly Float32Array[] = [];
  const started = performance.now();
  try {
    const input: unknown = JSON.parse(strategyText.value);
    const run: StrategyRun = await runStrategy(input, {
      backend: 'webgpu',
      repeats: Number(repeats.value),
      sequentialBaseline: baseline.checked,
      onProgress: (done, total) => setStatus(`Running… ${done}/${total}`, 'running'),
      onOutputs: (got) => {
        outputs = got;
      },
    });
    const totalMs = performance.now() - started;
    show(run);
    window.lastRun = { report: reportJson(run), outputs: outputs.map((o) => Array.from(o)), totalMs };
    setStatus(`Done in ${(totalMs / 1000).toFixed(1)} s.`, 'done');
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    window.lastError = { code: isParallelError(error) ? error.code : undefined, message };
    const findings = (error as { findings?: { code: string; message: string }[] }).findings ?? [];
    setStatus([message, ...findings.map((f) => `${f.code}: ${f.message}`)].join('\n'), 'error');
  } finally {
    runButton.disabled = false;
  }
}

function show(run: StrategyRun): void {
  result.innerHTML = timelineSection(timelineData(run));
  // The same zoom script the CLI's --html file carries; inserted as a script element so that it runs.
  const script = document.createElement('script');
  script.textContent = TIMELINE_SCRIPT;
  result.append(script);
  $<HTMLPreElement>('markdown').textContent = reportMarkdown(run, String(run.strategy.name ?? 'strategy'));
  $<HTMLElement>('markdown-box').hidden = false;
}

async function describeAdapter(): Promise<void> {
  const adapter = await navigator.gpu?.requestAdapter();
  const line = $<HTMLParagraphElement>('adapter');
  if (!adapter) {
    line.textContent =
      'This browser gives no WebGPU adapter (navigator.gpu is missing or returned none): nothing can run here.';
    setStatus('No WebGPU adapter.', 'error');
    return;
  }
  const info = adapter.info;
  line.textContent = `WebGPU adapter: ${info.vendor} ${info.architecture} ${info.description}`.trim();
  runButton.disabled = false;
  setStatus('', 'idle');
}

const style = document.createElement('style');
style.textContent = TIMELINE_STYLE;
document.head.append(style);
fillChoices();
example.value = 'chain:seed-fits';
writeStrategy(true);
example.addEventListener('change', () => writeStrategy(true));
devices.addEventListener('change', () => writeStrategy(false));
runButton.addEventListener('click', () => void run());
void describeAdapter();
