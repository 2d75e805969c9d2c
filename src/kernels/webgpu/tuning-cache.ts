import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import envPaths from 'env-paths';
import type { AdapterSummary } from '../../runtime/device.js';
import type { TunedPicks } from './matmul-planner.js';

type CacheFile = Record<string, Record<string, string>>;

/** The adapter and driver a tuned pick belongs to: a driver update invalidates it. */
export function adapterKey(adapter: AdapterSummary): string {
  return `${adapter.vendor}|${adapter.name}|${adapter.description}`;
}

/**
 * Winning matmul variants per adapter and shape class, kept in a JSON file in the user's cache folder
 * (`~/.cache/webgpu-parallel/matmul-tuning-v2.json` on Linux). A missing or unreadable file means no tuning.
 */
export class TuningCache {
  constructor(readonly path: string) {}

  /** Version 2: shape classes became power-of-two buckets; a version-1 file's classes mean other shapes. */
  static inUserCache(): TuningCache {
    return new TuningCache(join(envPaths('webgpu-parallel', { suffix: '' }).cache, 'matmul-tuning-v2.json'));
  }

  private readAll(): CacheFile {
    try {
      const parsed: unknown = JSON.parse(readFileSync(this.path, 'utf8'));
      return parsed && typeof parsed === 'object' ? (parsed as CacheFile) : {};
    } catch {
      return {};
    }
  }

  picksFor(adapter: AdapterSummary): TunedPicks {
    return this.readAll()[adapterKey(adapter)] ?? {};
  }

  /** Merges new picks for the adapter; written to a temporary file first so a crash leaves no half file. */
  save(adapter: AdapterSummary, picks: TunedPicks): void {
    const all = this.readAll();
    all[adapterKey(adapter)] = { ...all[adapterKey(adapter)], ...picks };
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`);
    renameSync(tmp, this.path);
  }
}
