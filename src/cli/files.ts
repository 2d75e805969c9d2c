import { accessSync, constants, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ParallelError } from '../errors.js';

/** What an errno means to someone who typed the path. */
function describeErrno(code: string | undefined): string | null {
  switch (code) {
    case 'ENOENT':
      return 'no such file or folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a folder, not a file';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return null;
  }
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const what = describeErrno(code);
    throw new ParallelError(
      'IO',
      code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${what ?? code ?? String(cause)}`,
      {
        where: path,
        fix:
          code === 'EACCES' || code === 'EPERM'
            ? 'make the file readable (chmod) or run as a user who may read it'
            : code === 'EISDIR'
              ? 'name the JSON file inside the folder'
              : 'check the path',
        cause,
      },
    );
  }
}

/**
 * Refuses, before any work, an output path that cannot be written: its folder missing or not writable, or
 * the path itself a folder. A run of minutes must not end in an error about where its report goes.
 */
export function checkWritable(path: string, flag: string): void {
  const folder = dirname(resolve(path));
  const fail = (why: string, fix: string): never => {
    throw new ParallelError('IO', `${flag} ${path}: ${why}`, { where: flag, fix });
  };
  let folderStat: ReturnType<typeof statSync> | undefined;
  try {
    folderStat = statSync(folder);
  } catch (cause) {
    fail(
      `its folder ${folder}: ${describeErrno((cause as NodeJS.ErrnoException).code) ?? String(cause)}`,
      'create the folder first, or write elsewhere',
    );
  }
  if (!folderStat!.isDirectory()) fail(`${folder} is not a folder`, 'name a file inside an existing folder');
  try {
    if (statSync(path).isDirectory()) fail('it is a folder', 'name a file, not a folder');
  } catch (cause) {
    if (cause instanceof ParallelError) throw cause;
  }
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    fail(`permission denied in ${folder}`, 'write to a folder you may write to');
  }
}

/** Writes through a temporary file and a rename, so a failed run never leaves half a report. */
export function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (cause) {
    rmSync(tmp, { force: true });
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ParallelError(
      'IO',
      `cannot write ${path}: ${describeErrno(code) ?? (cause as Error).message}`,
      {
        where: path,
        fix: 'check that the folder exists and may be written to',
        cause,
      },
    );
  }
}
