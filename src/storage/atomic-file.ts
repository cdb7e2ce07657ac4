/**
 * @module storage/atomic-file
 * Crash-safe replacement of a file: the content goes to a temp file in the same folder, which is
 * fsynced, renamed over the target, and then the folder is fsynced. A crash at any point leaves
 * either the old file or the new one in place, never a half-written one; at worst a stale temp
 * file remains, removed later by {@link cleanupStaleTempFiles}.
 *
 * @example
 * await writeFileAtomic('data/User.csv', chunksOf(rows)); // AsyncIterable<string | Uint8Array>
 */
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ioError, isAlive, isNotFound } from './file-system.js';

/** Temp names: `.<target name>.<pid>.<12 hex>.tmp`, next to the target. */
const TEMP_NAME = /^\.(.+)\.(\d+)\.([0-9a-f]{12})\.tmp$/;
/** Bytes gathered before one write(2): small chunks (one CSV batch each) are coalesced. */
const WRITE_BUFFER = 1 << 20;

/** Temp files this process is writing right now (never removed by a cleanup). */
const active = new Set<string>();

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

export interface AtomicWriteResult {
  /** Bytes written. */
  readonly bytes: number;
}

export interface AtomicWriteOptions {
  /** File mode of a new file; an existing target's mode is kept. Default 0o644. */
  readonly mode?: number;
}

/**
 * Replaces `target` with the concatenated chunks, atomically and durably. If the source throws
 * or a write fails, the temp file is removed, the target is untouched, and the error is rethrown
 * (I/O failures as an IO LexiconsError naming the file).
 */
export async function writeFileAtomic(
  target: string,
  chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  options: AtomicWriteOptions = {},
): Promise<AtomicWriteResult> {
  let mode = options.mode ?? 0o644;
  try {
    mode = (await stat(target)).mode & 0o7777;
  } catch {
    // no existing target: the default mode applies
  }
  const temp = tempPathFor(target);
  let fh: FileHandle | undefined;
  try {
    fh = await open(temp, 'wx', mode);
  } catch (err) {
    throw ioError(`cannot create ${temp}`, err);
  }
  const handle = fh;
  active.add(temp);
  let bytes = 0;
  let ok = false;
  try {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      try {
        await handle.write(buf, 0, buf.length);
      } catch (err) {
        throw ioError(`cannot write ${temp}`, err);
      }
    };
    for await (const chunk of chunks) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      pending.push(buf);
      pendingBytes += buf.length;
      bytes += buf.length;
      if (pendingBytes >= WRITE_BUFFER) await flush();
    }
    await flush();
    try {
      await handle.sync();
    } catch (err) {
      throw ioError(`cannot fsync ${temp}`, err);
    }
    await handle.close();
    fh = undefined;
    try {
      await rename(temp, target);
    } catch (err) {
      throw ioError(`cannot rename ${temp} to ${target}`, err);
    }
    ok = true;
    await fsyncDir(dirname(target));
    return { bytes };
  } finally {
    active.delete(temp);
    if (fh) await fh.close().catch(() => undefined); // already failing; the first error wins
    if (!ok) await unlink(temp).catch(() => undefined); // best effort; a leftover is cleaned later
  }
}

/** fsyncs a directory so a rename in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    throw ioError(`cannot fsync folder ${dir}`, err);
  } finally {
    await fh?.close();
  }
}

/**
 * Removes temp files left in `dir` by writers that died (their pid is gone) and by earlier runs
 * of this process that are no longer writing. Temp files of live processes are left alone.
 * Returns the names removed.
 */
export async function cleanupStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw ioError(`cannot list ${dir}`, err);
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    const path = join(dir, name);
    if (active.has(path) || (pid !== process.pid && isAlive(pid))) continue;
    try {
      await unlink(path);
      removed.push(name);
    } catch (err) {
      if (!isNotFound(err)) throw ioError(`cannot remove stale temp file ${path}`, err);
    }
  }
  return removed;
}
