/**
 * @module storage/folder-lock
 * One process per data folder: `<dir>/lexicons.lock` holds the pid of the process that opened it.
 * A lock left by a process that is gone is taken over; a live one refuses the open.
 */
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, LexiconsError } from '../errors.js';
import { errnoCode, ioError, isAlive } from './file-system.js';

/** The lock file's name inside the data folder (`lexicons check` reads it too). */
export const LOCK_FILE = 'lexicons.lock';

/** Folders this process holds. */
const held = new Set<string>();

/** Takes `dir/lexicons.lock` (pid inside); a lock of a dead process is taken over. */
export async function lockDataFolder(root: string): Promise<() => Promise<void>> {
  const file = join(root, LOCK_FILE);
  if (held.has(root)) throw new LexiconsError(ErrorCode.IO, `data folder ${root} is already open in this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || attempt > 0) throw ioError(`cannot lock data folder ${root}`, err);
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new LexiconsError(ErrorCode.IO, `data folder ${root} is in use by process ${pid} (${file}); stop it first, or remove the file if no lexicons process uses the folder`);
    }
    await unlink(file).catch(() => undefined); // stale: its process is gone
  }
  held.add(root);
  return async () => {
    if (!held.delete(root)) return;
    await unlink(file).catch(() => undefined);
  };
}
