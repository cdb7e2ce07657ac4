/**
 * @module storage/wal-durability
 * When an appended record of the write-ahead log is on disk: the fsyncs behind
 * `Wal.awaitDurable`, `Wal.flush` and `Wal.whenDurable`, and the once-a-second timer of policy
 * `everysec`.
 *
 * Group commit (policy `always`). Every record gets a sequence number (`kWrittenSeq`, never
 * reused, unlike commit ids). After its commit, a worker that must acknowledge calls
 * {@link WalDurability.awaitDurable}: if `kDurableSeq` already covers its record it returns;
 * otherwise one worker at a time takes the sync lock, loads `kWrittenSeq` (BEFORE the segment
 * number: every record counted is then in that segment or an older one), fdatasyncs, and raises
 * `kDurableSeq` to what it loaded; the others sleep on `kDurableSeq` with Atomics.wait and wake to
 * find their record covered. While one fdatasync runs, the commits of all other threads pile up
 * behind it and are made durable by the next single fdatasync: concurrent commits share fsyncs.
 * The commit lock is not held during the fsync, so commits are not serialized behind the disk.
 *
 * Segments. Sealed segments (older than the one appends go to) are fsynced by the next syncer
 * (`kSealedSynced`) before `kDurableSeq` may pass their records; a segment deleted meanwhile is
 * covered by a snapshot and needs nothing.
 *
 * Policies. `everysec`: a main-thread timer runs {@link WalDurability.flush} (async fdatasync,
 * never blocking the event loop) every second; acknowledgements do not wait. `no`: only snapshots
 * and shutdown sync. A failed fsync marks the log failed (like PostgreSQL after fsyncgate, a retry
 * cannot be trusted): commits are refused until a restart recovers from the disk.
 */
import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isMainThread, threadId } from 'node:worker_threads';
import { ErrorCode, LexiconsError } from '../errors.js';
import { ioError, isNotFound } from './file-system.js';
import type { FsyncPolicy } from './wal.js';
import { segmentPath } from './wal-format.js';
import { casMax, failedError, kDurableSeq, kFailed, kFsyncs, kSealedSynced, kSegment, kSyncLock, kWrittenSeq, markFailed, walTestHooks, wordsOf } from './wal-shared.js';

type WaitAsync = (arr: BigInt64Array, index: number, value: bigint) => { async: boolean; value: Promise<string> | string };

/** A waiter re-checks at least this often (a syncer that died is released by the main thread). */
const WAIT_MS = 20;

/** This thread's side of the log's durability. */
export class WalDurability {
  readonly #dir: string;
  readonly #policy: FsyncPolicy;
  readonly #i64: BigInt64Array;
  readonly #i32: Int32Array;
  /** This thread's append descriptor of a segment (a worker's group commit fsyncs through it). */
  readonly #fdFor: (segment: number) => number;
  /** Main thread: the async handle its flushes use, and the flush in flight (flushes are serial). */
  #fh: FileHandle | null = null;
  #fhSegment = -1;
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #waiters = 0;

  constructor(dir: string, policy: FsyncPolicy, sab: SharedArrayBuffer, fdFor: (segment: number) => number) {
    this.#dir = dir;
    this.#policy = policy;
    ({ i64: this.#i64, i32: this.#i32 } = wordsOf(sab));
    this.#fdFor = fdFor;
  }

  /**
   * Worker: returns once every record up to sequence number `target` is on disk, sharing the
   * fdatasync with concurrent commits. Throws IO if the log failed before: the commit must not be
   * acknowledged.
   */
  awaitDurable(target: bigint): void {
    if (isMainThread) throw new LexiconsError(ErrorCode.TXN, 'Wal.awaitDurable blocks: the main thread must use await wal.flush()');
    const me = threadId + 1;
    for (;;) {
      const durable = Atomics.load(this.#i64, kDurableSeq);
      if (durable >= target) return;
      if (Atomics.load(this.#i32, kFailed) !== 0) throw failedError(this.#i32);
      if (Atomics.compareExchange(this.#i32, kSyncLock, 0, me) === 0) {
        try {
          this.#syncNow();
        } finally {
          Atomics.store(this.#i32, kSyncLock, 0);
          Atomics.notify(this.#i64, kDurableSeq);
        }
        continue;
      }
      Atomics.wait(this.#i64, kDurableSeq, durable, WAIT_MS);
    }
  }

  /**
   * Worker, holding the sync lock: fdatasync of sealed segments and the current one.
   *
   * This and {@link #flushNow} are a deliberate pair of look-alikes (the same steps, with sync and
   * with async file calls): a worker must sync without yielding (it acknowledges in the same
   * turn), and the main thread must never block its event loop.
   */
  #syncNow(): void {
    const written = Atomics.load(this.#i64, kWrittenSeq); // before the segment: see the module comment
    const segment = Atomics.load(this.#i32, kSegment);
    try {
      for (let s = Atomics.load(this.#i32, kSealedSynced) + 1; s < segment; s++) {
        let fd: number;
        try {
          fd = openSync(segmentPath(this.#dir, s), 'r+');
        } catch (err) {
          if (isNotFound(err)) continue; // covered by a snapshot
          throw err;
        }
        try {
          (walTestHooks.fdatasyncSync ?? fdatasyncSync)(fd);
        } finally {
          closeSync(fd);
        }
        Atomics.add(this.#i64, kFsyncs, 1n);
      }
      casMax(this.#i32, kSealedSynced, segment - 1);
      (walTestHooks.fdatasyncSync ?? fdatasyncSync)(this.#fdFor(segment));
      Atomics.add(this.#i64, kFsyncs, 1n);
    } catch (err) {
      markFailed(this.#i64, this.#i32, err);
      throw ioError(`fdatasync of the write-ahead log ${segmentPath(this.#dir, segment)} failed; the commit is not acknowledged`, err);
    }
    casMax(this.#i64, kDurableSeq, written);
  }

  /** Any thread, async (never blocks): makes every record appended before the call durable. */
  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#flushNow());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<void> {
    if (Atomics.load(this.#i32, kFailed) !== 0) throw failedError(this.#i32);
    const written = Atomics.load(this.#i64, kWrittenSeq);
    const segment = Atomics.load(this.#i32, kSegment);
    const sealed = Atomics.load(this.#i32, kSealedSynced);
    if (written <= Atomics.load(this.#i64, kDurableSeq) && sealed >= segment - 1) return;
    const datasync = walTestHooks.datasync ?? ((fh: FileHandle) => fh.datasync());
    try {
      for (let s = sealed + 1; s < segment; s++) {
        let fh: FileHandle;
        try {
          fh = await open(segmentPath(this.#dir, s), 'r+');
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        try {
          await datasync(fh);
        } finally {
          await fh.close();
        }
        Atomics.add(this.#i64, kFsyncs, 1n);
      }
      casMax(this.#i32, kSealedSynced, segment - 1);
      if (this.#fhSegment !== segment) {
        const fh = await open(segmentPath(this.#dir, segment), 'r+');
        await this.#fh?.close();
        this.#fh = fh;
        this.#fhSegment = segment;
      }
      await datasync(this.#fh!);
      Atomics.add(this.#i64, kFsyncs, 1n);
    } catch (err) {
      markFailed(this.#i64, this.#i32, err);
      throw ioError(`fdatasync of the write-ahead log in ${this.#dir} failed`, err);
    }
    casMax(this.#i64, kDurableSeq, written);
    Atomics.notify(this.#i64, kDurableSeq);
  }

  /**
   * Resolves once every record appended before the call is durable, without syncing itself (the
   * everysec timer, a worker's group commit or a flush does it); rejects if the log fails first.
   */
  async whenDurable(): Promise<void> {
    const target = Atomics.load(this.#i64, kWrittenSeq);
    this.#waiters++;
    this.#timer?.ref(); // a pending Atomics.waitAsync alone does not keep the process alive
    try {
      for (;;) {
        const durable = Atomics.load(this.#i64, kDurableSeq);
        if (durable >= target) return;
        if (Atomics.load(this.#i32, kFailed) !== 0) throw failedError(this.#i32);
        const w = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(this.#i64, kDurableSeq, durable);
        if (w.async) await w.value;
      }
    } finally {
      if (--this.#waiters === 0) this.#timer?.unref();
    }
  }

  /** Main thread: starts the once-a-second flush of policy `everysec` (no-op for other policies). */
  startTimer(onError: (err: unknown) => void): void {
    if (this.#policy !== 'everysec' || this.#timer) return;
    let busy = false; // a slow disk: ticks do not pile flushes up behind the one running
    this.#timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.flush()
        .catch(onError)
        .finally(() => (busy = false));
    }, 1000);
    if (this.#waiters === 0) this.#timer.unref();
  }

  stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** After the last flush was asked for: waits for it and closes the flush's file handle. */
  async close(): Promise<void> {
    await this.#flushing;
    await this.#fh?.close().catch(() => undefined);
    this.#fh = null;
  }
}
