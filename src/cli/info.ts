import { formatBytes } from '../format.js';
import type { SystemInfo } from '../runtime/system-info.js';

export function formatInfo(info: SystemInfo): string {
  if (info.webgpu.length === 0) {
    return `No WebGPU adapter found.\n\n${info.noAdapterHelp}\n`;
  }
  const lines: string[] = [];
  info.webgpu.forEach((a, i) => {
    lines.push(`adapter ${i}: ${a.name}`);
    lines.push(`  vendor ${a.vendor || '-'}, architecture ${a.architecture || '-'}, backend ${a.backend}`);
    lines.push(`  ${a.description}`);
    lines.push(`  software adapter: ${a.isSoftware ? 'yes (figures measured here are CPU figures)' : 'no'}`);
    lines.push(`  features: ${a.features.join(', ') || 'none'}`);
    for (const [name, value] of Object.entries(a.limits)) {
      const shown = /Size$/.test(name) ? `${formatBytes(value)} (${value})` : String(value);
      lines.push(`  ${name}: ${shown}`);
    }
  });
  lines.push(
    '',
    'Each adapter opens as many logical devices as a strategy asks for (one device per adapter request).',
  );
  if (info.webgpu.some((a) => a.isSoftware)) {
    lines.push(
      "Once a device opens on a software adapter, Dawn's poll loop is backed off so that it leaves the",
      'cores to the device (WEBGPU_PARALLEL_DAWN_POLL=spin keeps it as Dawn has it).',
    );
  }
  return `${lines.join('\n')}\n`;
}
