import type { Finding } from './findings.js';
import type { ModelSource } from './model-source.js';

/** The page's twin of checkpoint-source.ts: a page has no folders to read, so a checkpoint is a finding. */
export function checkpointSource(
  checkpoint: string,
  _baseDir: string | undefined,
): { source: ModelSource | null; findings: Finding[] } {
  return {
    source: null,
    findings: [
      {
        code: 'MODEL_CHECKPOINT',
        severity: 'error',
        path: '$.model.checkpoint',
        message: `the checkpoint ${checkpoint} cannot be read in the browser: a page has no file system`,
        fix: 'run checkpoints with the CLI (webgpu-parallel run FILE); in the page use model.preset',
      },
    ],
  };
}
