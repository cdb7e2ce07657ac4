/**
 * The commit lock (commit-lock.ts) on its own: owners within a thread, try-only locking, the
 * release of a lock held by a thread that exited, and the wake-up of local waiters.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { threadId } from 'node:worker_threads';
import { LexiconsError } from '../../src/errors.js';
import { CommitLock } from '../../src/storage/commit-lock.js';
import { ControlBlock, kLockWord } from '../../src/storage/layout.js';

describe('CommitLock', () => {
  it('has one owner per thread: a second transaction, or a second lock instance of the thread, is refused', () => {
    const control = ControlBlock.allocate(1, 0);
    const a = new CommitLock(control);
    const b = new CommitLock(control);
    const first = {};
    assert.equal(a.lock(first), true);
    assert.equal(Atomics.load(control.i32, kLockWord), threadId + 1);
    assert.equal(a.lock({}), false, 'another owner of this instance');
    assert.equal(b.lock({}), false, 'another instance of this thread');
    a.unlock({});
    assert.equal(Atomics.load(control.i32, kLockWord), threadId + 1, 'only the owner unlocks');
    a.unlock(first);
    assert.equal(Atomics.load(control.i32, kLockWord), 0);
  });

  it('tryOnly: null while the lock is busy, never waiting; the function result otherwise', () => {
    const control = ControlBlock.allocate(1, 0);
    const lock = new CommitLock(control);
    Atomics.store(control.i32, kLockWord, threadId + 2); // held by another thread
    const started = Date.now();
    assert.equal(lock.tryOnly(() => lock.lock({})), null);
    assert.ok(Date.now() - started < 1000, 'no spinning until the main thread deadline');
    assert.equal(lock.releaseIfHeldBy(threadId + 1), true, 'the main thread frees the lock of an exited thread');
    assert.equal(lock.releaseIfHeldBy(threadId + 1), false);
    const owner = {};
    assert.equal(lock.tryOnly(() => lock.lock(owner)), true);
    assert.equal(lock.tryOnly(() => 'not called'), null, 'this thread holds it');
    const refuse = (): never => {
      throw new LexiconsError('TXN', 'cannot begin');
    };
    assert.equal(new CommitLock(control).tryOnly(refuse), null, 'a TXN refusal while this thread holds the word means busy');
    lock.unlock(owner);
    assert.throws(() => new CommitLock(control).tryOnly(refuse), { message: 'cannot begin' }, 'any other failure propagates');
  });

  it('localRelease resolves when this thread’s holder unlocks', async () => {
    const lock = new CommitLock(ControlBlock.allocate(1, 0));
    await lock.localRelease(); // free: at once
    const owner = {};
    lock.lock(owner);
    let released = false;
    const waiting = lock.localRelease().then(() => (released = true));
    await Promise.resolve();
    assert.equal(released, false);
    lock.unlock(owner);
    await waiting;
    assert.equal(released, true);
  });
});
