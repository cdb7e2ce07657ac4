/**
 * @module storage/commit-lock
 * The commit lock: one word of the control block that every thread's commits take in turn
 * (`kLockWord`: 0 = free, else the holder's threadId + 1), and the repair a new holder makes when
 * the previous one died mid-commit (see commit-protocol.ts, "Dead writers").
 *
 * Commit sections are microseconds long. A worker spins a little before it parks in
 * Atomics.wait; the main thread owns the sockets, so it never waits: it spins with a deadline, or
 * only tries ({@link CommitLock.tryOnly}). Within one thread the lock has an owner object (a
 * transaction), so a second transaction of the same thread is refused instead of deadlocking.
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { ErrorCode, isLexiconsError, LexiconsError } from '../errors.js';
import { i32DeadVersions, i32RowCount, i64LastWrite, kDirty, kLockWaiters, kLockWord, kPendingCommit, kRepairEpoch, type ControlBlock } from './layout.js';
import type { KeyStamps } from './read-set.js';
import type { SharedTable } from './table.js';

/** The main thread never waits on the lock; it gives up after spinning this long. */
const MAIN_THREAD_SPIN_MS = 5000;
/** Thrown by lock() under tryOnly when another thread holds the lock (caught there). */
const LOCK_BUSY = new Error('the commit lock is busy');
/** Failed lock attempts a worker spins through before it waits. */
const SPIN_TRIES = 200;
/** A worker re-checks the lock word at least this often while waiting. */
const WAIT_MS = 20;

/** This thread's side of the commit lock (one per store instance). */
export class CommitLock {
  readonly #i32: Int32Array;
  #owner: object | null = null;
  /** Set by tryOnly: lock() then fails at once instead of spinning or waiting. */
  #tryOnly = false;
  #localWaiters: Array<() => void> = [];

  constructor(control: ControlBlock) {
    this.#i32 = control.i32;
  }

  /** Takes the lock for `owner`; false if another transaction of this thread holds it. */
  lock(owner: object): boolean {
    if (this.#owner !== null) return false; // another transaction of this thread holds it
    const i32 = this.#i32;
    const me = threadId + 1;
    const deadline = isMainThread ? Date.now() + MAIN_THREAD_SPIN_MS : 0;
    let spins = 0;
    for (;;) {
      const seen = Atomics.compareExchange(i32, kLockWord, 0, me);
      if (seen === 0) break;
      if (seen === me) return false; // held by another store instance of this thread
      if (this.#tryOnly) throw LOCK_BUSY;
      if (isMainThread) {
        // The main thread owns the sockets: it never blocks in Atomics.wait, it spins (and only
        // commits at start-up in practice, before workers exist).
        if (Date.now() > deadline) throw new LexiconsError(ErrorCode.TXN, `commit lock held by thread ${seen - 1} for more than ${MAIN_THREAD_SPIN_MS} ms`);
        continue;
      }
      // Commit sections are microseconds long: spin a little before parking in the kernel, so a
      // hand-off does not cost two context switches.
      if (++spins <= SPIN_TRIES) continue;
      Atomics.add(i32, kLockWaiters, 1);
      Atomics.wait(i32, kLockWord, seen, WAIT_MS);
      Atomics.sub(i32, kLockWaiters, 1);
    }
    this.#owner = owner;
    return true;
  }

  unlock(owner: object): void {
    if (this.#owner !== owner) return;
    this.#owner = null;
    const i32 = this.#i32;
    Atomics.store(i32, kLockWord, 0);
    if (Atomics.load(i32, kLockWaiters) > 0) Atomics.notify(i32, kLockWord, 1);
    const waiters = this.#localWaiters;
    this.#localWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when no transaction of this thread holds the lock. */
  localRelease(): Promise<void> {
    if (this.#owner === null) return Promise.resolve();
    return new Promise((resolve) => this.#localWaiters.push(resolve));
  }

  /**
   * Runs `begin` (which takes the lock) with lock attempts failing at once instead of spinning or
   * waiting: its result, or null when the lock is busy (held by another thread, or by this one).
   */
  tryOnly<T>(begin: () => T): T | null {
    if (this.#owner !== null) return null;
    this.#tryOnly = true;
    try {
      return begin();
    } catch (err) {
      if (err === LOCK_BUSY || (isLexiconsError(err, ErrorCode.TXN) && Atomics.load(this.#i32, kLockWord) === threadId + 1)) return null;
      throw err;
    } finally {
      this.#tryOnly = false;
    }
  }

  /** Frees the lock if thread `threadId` holds it (a worker that exited). Never blocks. */
  releaseIfHeldBy(threadId: number): boolean {
    const i32 = this.#i32;
    if (Atomics.compareExchange(i32, kLockWord, threadId + 1, 0) !== threadId + 1) return false;
    Atomics.notify(i32, kLockWord, 1);
    return true;
  }
}

/**
 * Under the lock: if the previous holder died mid-commit (dirty = 1), undo its unpublished
 * commit. Its slots are the contiguous tail of each table with begin == pending; `next` links
 * into them, last-write ids and key stamps are the only other writes it may have made. O(rows),
 * and rare.
 */
export function repairIfDirty(c: ControlBlock, tables: readonly SharedTable[], stamps: KeyStamps): void {
  if (Atomics.load(c.i32, kDirty) === 0) return;
  const pending = Number(Atomics.load(c.i64, kPendingCommit));
  const latest = c.commitId();
  if (pending > latest) {
    Atomics.add(c.i32, kRepairEpoch, 1);
    for (const t of tables) {
      const rows = t.rowCount();
      let keep = rows;
      while (keep > 0 && t.beginOf(keep - 1) === pending) keep--;
      if (keep !== rows) Atomics.store(c.i32, i32RowCount(t.id), keep);
      let dead = 0;
      for (let v = 0; v < keep; v++) {
        const n = t.nextOf(v);
        if (n >= keep) t.setNext(v, -1);
        else if (n !== -1) dead++;
        if (t.isTombstone(v)) dead++;
      }
      Atomics.store(c.i32, i32DeadVersions(t.id), dead);
      if (c.lastWrite(t.id) > latest) Atomics.store(c.i64, i64LastWrite(t.id), BigInt(latest));
    }
    stamps.clampAbove(latest);
  }
  Atomics.store(c.i32, kDirty, 0);
}
