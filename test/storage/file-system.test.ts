/**
 * The data folder's file-system helpers (file-system.ts): error messages, errno tests, pid
 * liveness, creating the folder. The folder lock has its own file (folder-lock.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { createDataFolder, errnoCode, exists, ioError, isAlive, isNotFound } from '../../src/storage/file-system.js';
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
