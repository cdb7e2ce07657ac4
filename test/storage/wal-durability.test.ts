/**
 * The log's shared words (wal-shared.ts) and its durability machinery (wal-durability.ts) on
 * their own, over real segment files: flushes raise the durable sequence number and count fsyncs,
 * waiters wake, a failed fsync disables the log with an exact error.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import { WalDurability } from '../../src/storage/wal-durability.js';
import { createSegment } from '../../src/storage/wal-format.js';
import { casMax, failureOf, kDurableSeq, kFailed, kFsyncs, kSealedSynced, kSegment, kWrittenSeq, markFailed, SAB_BYTES, walTestHooks, wordsOf } from '../../src/storage/wal-shared.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A log's shared words with appends going to `segment`, `written` records appended. */
function words(segment: number, written: number): { sab: SharedArrayBuffer; i64: BigInt64Array; i32: Int32Array } {
  const sab = new SharedArrayBuffer(SAB_BYTES);
  const { i64, i32 } = wordsOf(sab);
  Atomics.store(i32, kSegment, segment);
  Atomics.store(i32, kSealedSynced, 0);
  Atomics.store(i64, kWrittenSeq, BigInt(written));
  return { sab, i64, i32 };
}

const noFd = (): number => {
  throw new Error('a main-thread flush never uses an append descriptor');
};

describe('wal-shared', () => {
  it('casMax only raises, for both word sizes; a failure is kept by its errno name', () => {
    const { i64, i32 } = words(1, 0);
    casMax(i64, kDurableSeq, 5n);
    casMax(i64, kDurableSeq, 3n);
    casMax(i32, kSealedSynced, 4);
    casMax(i32, kSealedSynced, 2);
    assert.deepEqual([Atomics.load(i64, kDurableSeq), Atomics.load(i32, kSealedSynced)], [5n, 4]);
    assert.equal(failureOf(i32), null);
    markFailed(i64, i32, Object.assign(new Error('disk full'), { code: 'ENOSPC' }));
    markFailed(i64, i32, new Error('no code: EIO, but the first failure is kept'));
    assert.equal(failureOf(i32), 'ENOSPC');
    assert.notEqual(Atomics.load(i32, kFailed), 0);
  });
});

describe('WalDurability', () => {
  it('flush fsyncs sealed segments and the current one, then covers every record written', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    for (const n of [1, 2, 3]) await createSegment(dir, n);
    const { sab, i64, i32 } = words(3, 7);
    const durability = new WalDurability(dir, 'no', sab, noFd);
    let covered = false;
    const waiting = durability.whenDurable().then(() => (covered = true));
    await durability.flush();
    await waiting;
    assert.equal(covered, true);
    assert.deepEqual([Atomics.load(i64, kDurableSeq), Atomics.load(i32, kSealedSynced), Atomics.load(i64, kFsyncs)], [7n, 2, 3n]);
    await durability.flush();
    assert.equal(Atomics.load(i64, kFsyncs), 3n, 'nothing new: no fsync');
    await durability.close();
  });

  it('a failing fsync disables the log: the flush and every later wait are refused with the errno', async () => {
    await using folder = await tempDir('lexicons-wal-');
    const dir = folder.path;
    await createSegment(dir, 1);
    const { sab, i32 } = words(1, 1);
    const durability = new WalDurability(dir, 'always', sab, noFd);
    walTestHooks.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    try {
      await assert.rejects(durability.flush(), (e) => isLexiconsError(e, 'IO') && e.message === `fdatasync of the write-ahead log in ${dir} failed: EIO: i/o error`);
    } finally {
      delete walTestHooks.datasync;
    }
    assert.equal(failureOf(i32), 'EIO');
    const disabled = 'the write-ahead log is disabled after an I/O failure (EIO); nothing is committed until the server restarts and recovers';
    await assert.rejects(durability.flush(), { message: disabled });
    await assert.rejects(durability.whenDurable(), { message: disabled });
    assert.throws(() => durability.awaitDurable(1n), (e) => isLexiconsError(e, 'TXN') && /main thread must use await wal\.flush\(\)/.test(e.message));
    await durability.close();
  });
});
