/**
 * @module storage/file-system
 * Small file-system helpers the data-folder modules share: IO errors that carry the cause's
 * message, errno tests, whether a process id is still alive (stale temp files, stale folder locks),
 * whether a file exists, and creating the data folder.
 */
import { access, mkdir } from 'node:fs/promises';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';

/** An IO error: `message`, then `: <the cause's message>` when there is a cause. */
export function ioError(message: string, cause?: unknown): LexiconsError {
  const detail = cause === undefined ? '' : `: ${messageOf(cause)}`;
  return new LexiconsError(ErrorCode.IO, `${message}${detail}`, { cause });
}

/** The errno code of a failed system call (`'ENOENT'`, `'EEXIST'`...), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null | undefined)?.code;
}

/** Whether a system call failed because the file or folder does not exist. */
export function isNotFound(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

/** Whether process `pid` exists (EPERM: it exists, but belongs to another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** Whether `path` exists (and is accessible). */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Creates the data folder `root` (and its parents) if missing; IO error naming it otherwise. */
export async function createDataFolder(root: string): Promise<void> {
  try {
    await mkdir(root, { recursive: true });
  } catch (err) {
    throw ioError(`cannot create data folder ${root}`, err);
  }
}
