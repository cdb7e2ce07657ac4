/**
 * Atomic file replacement: content, failure paths, a writer killed with SIGKILL mid-write, and
 * the cleanup of stale temp files.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fork, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLexiconsError } from '../../src/errors.js';
import { cleanupStaleTempFiles, writeFileAtomic } from '../../src/storage/atomic-file.js';
import { formatRecords, readCsvFile } from '../../src/storage/csv.js';
import { tempDir } from '../helpers/temp-dir.js';

const CRASH_WRITER = fileURLToPath(new URL('../fixtures/csv/crash-writer.js', import.meta.url));

async function countRecords(file: string): Promise<number> {
  let n = 0;
  await readCsvFile(file, () => {
    n++;
  });
  return n;
}

/** A pid that is certainly not running: a child that has already exited. */
function deadPid(): number {
  const res = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(res.stdout);
}

describe('writeFileAtomic', () => {
  test('writes string and byte chunks, replaces the old file, keeps its mode, leaves no temp file', async () => {
    await using folder = await tempDir('lexicons-atomic-');
    const dir = folder.path;
    const target = join(dir, 'T.csv');
    await writeFile(target, 'old');
    await chmod(target, 0o600);
    const res = await writeFileAtomic(target, ['pk,v\n', new TextEncoder().encode('a,ü\n')]);
    assert.equal(await readFile(target, 'utf8'), 'pk,v\na,ü\n');
    assert.equal(res.bytes, Buffer.byteLength('pk,v\na,ü\n'));
    assert.equal((await stat(target)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['T.csv']);
  });

  test('a source that throws mid-write leaves the old file untouched and removes the temp file', async () => {
    await using folder = await tempDir('lexicons-atomic-');
    const dir = folder.path;
    const target = join(dir, 'T.csv');
    await writeFile(target, 'precious');
    async function* failing(): AsyncGenerator<string> {
      yield 'x'.repeat(3 << 20); // past the write buffer: bytes reach the temp file
      throw new Error('fault injected');
    }
    await assert.rejects(writeFileAtomic(target, failing()), /fault injected/);
    assert.equal(await readFile(target, 'utf8'), 'precious');
    assert.deepEqual(await readdir(dir), ['T.csv']);
  });

  test('a missing folder is an IO error naming the temp file', async () => {
    await using folder = await tempDir('lexicons-atomic-');
    const dir = folder.path;
    await assert.rejects(writeFileAtomic(join(dir, 'nope', 'T.csv'), ['x']), (e) => isLexiconsError(e, 'IO') && /cannot create .*nope.*T\.csv.*ENOENT/.test(e.message));
  });

  test('a writer killed with SIGKILL mid-write never replaces the old file; the stale temp file is cleaned up', async () => {
    await using folder = await tempDir('lexicons-atomic-');
    const dir = folder.path;
    const target = join(dir, 'Big.csv');
    const oldRows = Array.from({ length: 50_000 }, (_, i) => [`old-${i}`, `content ${i}, "quoted"\nline`]);
    await writeFile(target, formatRecords([['pk', 'content'], ...oldRows]));
    const before = await readFile(target);

    const child = fork(CRASH_WRITER, ['atomic', target], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = once(child, 'exit');
    const [msg] = (await Promise.race([once(child, 'message'), exited.then(() => ['exited early'])])) as [string];
    assert.equal(msg, 'midway');
    const temps = (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
    assert.equal(temps.length, 1, 'the writer is mid-way through a temp file');
    assert.ok((await stat(join(dir, temps[0]!))).size > 10 << 20, 'tens of MB were written before the kill');
    child.kill('SIGKILL');
    const [code, signal] = await exited;
    assert.equal(code, null);
    assert.equal(signal, 'SIGKILL');

    assert.ok((await readFile(target)).equals(before), 'old file byte-identical');
    assert.equal(await countRecords(target), 50_001, 'old file loads completely');
    assert.deepEqual(await cleanupStaleTempFiles(dir), temps);
    assert.deepEqual(await readdir(dir), ['Big.csv']);
  });
});

describe('cleanupStaleTempFiles', () => {
  test('removes temp files of dead writers only, and never other files', async () => {
    await using folder = await tempDir('lexicons-atomic-');
    const dir = folder.path;
    const dead = `.User.csv.${deadPid()}.0123456789ab.tmp`;
    const alive = `.User.csv.${process.ppid}.0123456789ab.tmp`;
    const others = ['User.csv', '.User.csv.tmp', 'notes.tmp', '.User.csv.12.xyz.tmp'];
    for (const n of [dead, alive, ...others]) await writeFile(join(dir, n), 'x');
    assert.deepEqual(await cleanupStaleTempFiles(dir), [dead]);
    assert.deepEqual((await readdir(dir)).sort(), [alive, ...others].sort());
  });

  test('a missing folder has nothing to clean', async () => {
    assert.deepEqual(await cleanupStaleTempFiles(join(tmpdir(), 'lexicons-does-not-exist-9f8e7d')), []);
  });
});
