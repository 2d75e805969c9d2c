import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParallelError } from '../errors.js';

/** The text of a checkpoint folder's `config.json`, and the file's path for errors. */
export function readConfigFile(dir: string): { file: string; text: string } {
  const file = join(dir, 'config.json');
  try {
    return { file, text: readFileSync(file, 'utf8') };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ParallelError(
      'IO',
      code === 'ENOENT' ? `no such file: ${file}` : `cannot read ${file} (${code})`,
      {
        where: file,
        fix: 'a checkpoint folder needs the config.json its weights were saved with',
        cause,
      },
    );
  }
}
