import { ParallelError } from '../errors.js';

/** The page's twin of config-file.ts: a page has no folders, so a checkpoint's config cannot be read. */
export function readConfigFile(dir: string): { file: string; text: string } {
  throw new ParallelError('IO', `cannot read ${dir}/config.json in the browser: a page has no file system`, {
    where: dir,
    fix: 'load checkpoints under Node (the CLI or the library); in the page use a preset',
  });
}
