import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ParallelError } from '../errors.js';

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ParallelError(
      'IO',
      code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path} (${code ?? String(cause)})`,
      {
        where: path,
        fix: 'check the path',
        cause,
      },
    );
  }
}

/** Writes through a temporary file and a rename, so a failed run never leaves half a report. */
export function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (cause) {
    throw new ParallelError('IO', `cannot write ${path}: ${(cause as Error).message}`, {
      where: path,
      cause,
    });
  }
}
