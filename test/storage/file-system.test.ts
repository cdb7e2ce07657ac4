/**
 * The data folder's file-system helpers (file-system.ts) and its one-process lock
 * (folder-lock.ts): error messages, pid liveness, stale locks taken over, live ones refused.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { createDataFolder, errnoCode, exists, ioError, isAlive, isNotFound } from '../../src/storage/file-system.js';
import { LOCK_FILE, lockDataFolder } from '../../src/storage/folder-lock.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A pid that is certainly not running: a child that has already exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('file-system helpers', () => {
  it('IO errors carry the cause’s message; errno tests; pid liveness', async () => {
    const cause = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    const err = ioError('cannot read x', cause);
    assert.ok(isLexiconsError(err, 'IO'));
    assert.equal(err.message, 'cannot read x: ENOENT: no such file');
    assert.equal(err.cause, cause);
    assert.equal(ioError('the log is closed').message, 'the log is closed');
    assert.equal(ioError('odd', 'a string').message, 'odd: a string');
    assert.deepEqual([errnoCode(cause), errnoCode(undefined), isNotFound(cause), isNotFound(new Error('x'))], ['ENOENT', undefined, true, false]);
    assert.equal(isAlive(process.pid), true);
    assert.equal(isAlive(deadPid()), false);
  });

  it('createDataFolder makes parents, and names the folder when it cannot', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    const nested = join(dir, 'a', 'b');
    await createDataFolder(nested);
    assert.ok((await stat(nested)).isDirectory());
    assert.equal(await exists(nested), true);
    assert.equal(await exists(join(dir, 'missing')), false);
    await writeFile(join(dir, 'file'), 'x');
    await assert.rejects(createDataFolder(join(dir, 'file', 'sub')), (e) => isLexiconsError(e, 'IO') && e.message.startsWith(`cannot create data folder ${join(dir, 'file', 'sub')}: ENOTDIR`));
  });
});

describe('lockDataFolder', () => {
  it('holds the folder once per process, writes its pid, and removes the file on release', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    const release = await lockDataFolder(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
    await assert.rejects(lockDataFolder(dir), (e) => isLexiconsError(e, 'IO') && e.message === `data folder ${dir} is already open in this process`);
    await release();
    await release(); // idempotent
    assert.equal(await exists(join(dir, LOCK_FILE)), false);
  });

  it('takes over the lock of a process that is gone; refuses one whose process runs', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    await writeFile(join(dir, LOCK_FILE), `${deadPid()}\n`);
    const release = await lockDataFolder(dir);
    await release();
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      await writeFile(join(dir, LOCK_FILE), `${child.pid}\n`);
      await assert.rejects(lockDataFolder(dir), (e) => isLexiconsError(e, 'IO') && e.message.startsWith(`data folder ${dir} is in use by process ${child.pid}`));
    } finally {
      const exited = once(child, 'exit');
      child.kill();
      await exited;
    }
  });
});
