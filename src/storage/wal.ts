/**
 * @module storage/wal
 * The write-ahead log: every commit is appended to the current segment of the data folder before
 * it is published, and acknowledged only once it is as durable as the fsync policy promises.
 *
 * WHY IT IS BUILT THIS WAY
 *
 * Appending under the commit lock. The store calls `onBeforePublish(changes)` in the committing
 * thread while it holds the commit lock, before any shared write (commit-protocol.ts). Each thread
 * appends there with a plain `writeSync` to its own O_APPEND descriptor of the current segment, so
 * records are in commit-id order without any extra lock, and a failed write (ENOSPC, EIO) throws:
 * the commit aborts before anything is published and the caller gets an IO error. A partial write
 * is cut off again with ftruncate to the segment length kept in shared memory; if even that fails
 * the log is marked failed and refuses every later commit (it cannot promise anything any more).
 *
 * Unpublished records. A writer can die, or its publish can throw, after its record was appended.
 * Its commit id is then reused by the next commit (the repair in commit-lock.ts). The log keeps the commit id of
 * the last record appended (`kLastCommit`); the next appender sees it is >= its own commit id
 * (i.e. it was never published) and first appends an abort record for it. Recovery also treats a
 * record reusing a commit id as superseding the earlier one, so the log stays right even if the
 * abort record was lost. `afterThreadExit` writes the abort record as soon as the main thread can
 * take the commit lock without waiting (it only try-locks) when a worker died.
 *
 * Durability. When an appended record is on disk (group commit for `always`, the `everysec`
 * timer, flushes) is wal-durability.ts; the shared words of the log are named in wal-shared.ts.
 * Segments: a snapshot switches appends to a new segment under the commit lock (`kSegment`);
 * threads notice at their next append and reopen.
 *
 * The main thread never blocks: it never calls awaitDurable (it uses the async flush), it only
 * try-locks the commit lock at run time (afterThreadExit, snapshots), and it appends with writeSync
 * only when it holds the lock itself.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { ChangeSet } from './api.js';
import { ioError } from './file-system.js';
import type { SharedStore } from './store.js';
import { WalDurability } from './wal-durability.js';
import { encodeAbort, encodeCommit, HEADER_BYTES, segmentPath } from './wal-format.js';
import { failedError, failureOf, kDurableSeq, kFailed, kFsyncs, kLastCommit, kSealedSynced, kSegment, kSegmentBytes, kSyncLock, kWrittenSeq, markFailed, SAB_BYTES, walTestHooks, wordsOf } from './wal-shared.js';

export { walTestHooks } from './wal-shared.js';

export type FsyncPolicy = 'always' | 'everysec' | 'no';
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'everysec', 'no'];

const HANDLES_VERSION = 1;
/** afterThreadExit: tries on the next event-loop turns first, then on timers up to this period. */
const RETRY_IMMEDIATE = 8;
const RETRY_MAX_MS = 50;

/** Everything a worker needs to attach to the log (structured-cloneable). */
export interface WalHandles {
  readonly version: number;
  readonly dir: string;
  readonly policy: FsyncPolicy;
  readonly sab: SharedArrayBuffer;
}

export interface WalStats {
  readonly policy: FsyncPolicy;
  readonly segment: number;
  /** Records appended (commit and abort records) since start. */
  readonly written: number;
  /** Records known to be on disk. */
  readonly durable: number;
  readonly fsyncs: number;
  /** The I/O failure that disabled the log, or null. */
  readonly failed: string | null;
}

export class Wal {
  readonly handles: WalHandles;
  readonly policy: FsyncPolicy;
  readonly dir: string;
  readonly #i64: BigInt64Array;
  readonly #i32: Int32Array;
  /** This thread's descriptor of segment #fdSegment (appends and worker fsyncs). */
  #fd = -1;
  #fdSegment = -1;
  /** Sequence number of the last record this thread appended. */
  #mySeq = 0n;
  readonly #durability: WalDurability;
  #onClose: (() => Promise<void>) | null = null;
  #closed = false;

  private constructor(handles: WalHandles) {
    this.handles = handles;
    this.policy = handles.policy;
    this.dir = handles.dir;
    ({ i64: this.#i64, i32: this.#i32 } = wordsOf(handles.sab));
    this.#durability = new WalDurability(handles.dir, handles.policy, handles.sab, (segment) => this.#fdFor(segment));
  }

  /**
   * Main thread: a log appending to segment `segment` of `dir`, which exists, holds its header and
   * is fsynced, as are all older segments (recovery.ts creates it). `onClose` runs at close.
   */
  static create(dir: string, policy: FsyncPolicy, segment: number, onClose?: () => Promise<void>): Wal {
    if (!FSYNC_POLICIES.includes(policy)) throw new LexiconsError(ErrorCode.OPTION, `options.fsync must be one of ${FSYNC_POLICIES.join(', ')}`);
    const wal = new Wal({ version: HANDLES_VERSION, dir, policy, sab: new SharedArrayBuffer(SAB_BYTES) });
    Atomics.store(wal.#i32, kSegment, segment);
    Atomics.store(wal.#i32, kSealedSynced, segment - 1);
    Atomics.store(wal.#i64, kSegmentBytes, BigInt(HEADER_BYTES));
    wal.#onClose = onClose ?? null;
    return wal;
  }

  /**
   * Worker: attaches to the main thread's log and makes `store` append every commit to it.
   *
   * @example
   * const store = SharedStore.attach(schema, init.handles);
   * const wal = Wal.attach(store, init.wal);
   * // after each successful commit, before the result leaves the worker:
   * wal.awaitDurable();
   */
  static attach(store: SharedStore, handles: WalHandles): Wal {
    if (!handles || handles.version !== HANDLES_VERSION || !(handles.sab instanceof SharedArrayBuffer) || handles.sab.byteLength !== SAB_BYTES) {
      throw new LexiconsError(ErrorCode.OPTION, 'Wal.attach: handles are not WalHandles of this lexicons version');
    }
    const wal = new Wal(handles);
    wal.bind(store);
    return wal;
  }

  /** Makes `store` (this thread's instance) append each commit here, after any existing hook. */
  bind(store: SharedStore): void {
    const prev = store.onBeforePublish;
    store.onBeforePublish = prev
      ? (changes) => {
          prev(changes);
          this.append(changes);
        }
      : (changes) => this.append(changes);
  }

  get failed(): string | null {
    return failureOf(this.#i32);
  }

  #path(segment: number): string {
    return segmentPath(this.dir, segment);
  }

  /** This thread's descriptor of the current segment (call under the commit lock or to sync). */
  #fdFor(segment: number): number {
    if (this.#fdSegment === segment) return this.#fd;
    const fd = openSync(this.#path(segment), 'a');
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = fd;
    this.#fdSegment = segment;
    return fd;
  }

  // -- appending (under the commit lock) -----------------------------------------------------

  /** Appends `changes` (and an abort record for an unpublished predecessor). Throws IO on failure. */
  append(changes: ChangeSet): void {
    if (this.#closed) throw ioError('the write-ahead log is closed');
    if (Atomics.load(this.#i32, kFailed) !== 0) throw failedError(this.#i32);
    const last = Number(Atomics.load(this.#i64, kLastCommit));
    let record: Buffer;
    try {
      record = encodeCommit(changes);
    } catch (err) {
      throw new LexiconsError(ErrorCode.TXN, messageOf(err), { cause: err });
    }
    const buf = last >= changes.commitId ? Buffer.concat([encodeAbort(last), record]) : record;
    this.#write(buf, last >= changes.commitId ? 2 : 1, `commit ${changes.commitId}`);
    Atomics.store(this.#i64, kLastCommit, BigInt(changes.commitId));
  }

  #write(buf: Buffer, records: number, what: string): void {
    const segment = Atomics.load(this.#i32, kSegment);
    const before = Atomics.load(this.#i64, kSegmentBytes);
    let fd: number;
    try {
      fd = this.#fdFor(segment);
    } catch (err) {
      throw ioError(`cannot open write-ahead log ${this.#path(segment)} to append ${what}`, err);
    }
    try {
      const write = walTestHooks.writeSync ?? ((f: number, b: Buffer) => writeSync(f, b));
      for (let done = 0; done < buf.length; ) done += write(fd, done === 0 ? buf : buf.subarray(done));
    } catch (err) {
      try {
        ftruncateSync(fd, Number(before)); // cut a partial record off again
      } catch (cut) {
        markFailed(this.#i64, this.#i32, cut);
      }
      throw ioError(`cannot append ${what} to the write-ahead log ${this.#path(segment)}; the commit is refused`, err);
    }
    Atomics.store(this.#i64, kSegmentBytes, before + BigInt(buf.length));
    const seq = Atomics.load(this.#i64, kWrittenSeq) + BigInt(records);
    Atomics.store(this.#i64, kWrittenSeq, seq);
    this.#mySeq = seq;
  }

  /**
   * Main thread, after a worker exited: frees the sync lock if that thread held it, and if the last
   * record appended was never published (the worker died mid-commit), appends its abort record
   * under the commit lock. Never blocks: it only try-locks (`store.tryBegin`); while another thread
   * holds the lock it tries again on later turns of the event loop (setImmediate, then timers
   * backing off to {@link RETRY_MAX_MS}), and stops as soon as the record is no longer needed (the
   * next committer wrote it, see `append`) or the log is closed. Call after
   * `store.releaseIfHeldBy(threadId)`. Resolves with whether this call wrote an abort record;
   * rejects with IO if the append failed.
   */
  afterThreadExit(store: SharedStore, exitedThreadId: number): Promise<boolean> {
    if (Atomics.compareExchange(this.#i32, kSyncLock, exitedThreadId + 1, 0) === exitedThreadId + 1) Atomics.notify(this.#i64, kDurableSeq);
    return new Promise<boolean>((resolve, reject) => {
      let attempt = 0;
      const tryNow = (): void => {
        let written: boolean | null;
        try {
          written = this.#abortUnpublished(store);
        } catch (err) {
          reject(err);
          return;
        }
        if (written !== null) {
          resolve(written);
          return;
        }
        attempt++; // the lock is busy: come back later, never spin here
        if (attempt <= RETRY_IMMEDIATE) setImmediate(tryNow);
        else setTimeout(tryNow, Math.min(RETRY_MAX_MS, 2 ** (attempt - RETRY_IMMEDIATE))).unref();
      };
      tryNow();
    });
  }

  /** One try of afterThreadExit: whether it wrote the abort record, or null when the lock is busy. */
  #abortUnpublished(store: SharedStore): boolean | null {
    if (this.#closed || Number(Atomics.load(this.#i64, kLastCommit)) <= store.snapshot()) return false;
    const txn = store.tryBegin(); // takes the lock and repairs the dead commit, or null at once
    if (!txn) return null;
    try {
      const last = Number(Atomics.load(this.#i64, kLastCommit));
      if (last <= store.snapshot()) return false;
      this.#write(encodeAbort(last), 1, `the abort record of commit ${last}`);
      Atomics.store(this.#i64, kLastCommit, BigInt(store.snapshot()));
    } finally {
      txn.abort();
    }
    if (this.policy !== 'no') this.flush().catch(() => undefined); // a failure marks the log failed
    return true;
  }

  // -- durability --------------------------------------------------------------------------

  /**
   * Worker: returns once every record this thread appended is durable under the policy (`always`:
   * fdatasynced, sharing the fsync with concurrent commits; `everysec`/`no`: at once). Throws IO if
   * the log failed before they became durable: the commit must not be acknowledged.
   */
  awaitDurable(): void {
    const target = this.#mySeq;
    if (this.policy !== 'always' || target === 0n) return;
    this.#durability.awaitDurable(target);
  }

  /**
   * Any thread, async (never blocks): makes every record appended before the call durable. Used by
   * the everysec timer, by snapshots and shutdown, and by main-thread commits to acknowledge.
   * Rejects with IO (and disables the log) if an fdatasync fails.
   */
  flush(): Promise<void> {
    return this.#durability.flush();
  }

  /**
   * Resolves once every record appended before the call is durable, without syncing itself (the
   * everysec timer, a worker's group commit or a flush does it); rejects if the log fails first.
   */
  whenDurable(): Promise<void> {
    return this.#durability.whenDurable();
  }

  /** Main thread: starts the once-a-second flush of policy `everysec` (no-op for other policies). */
  startTimer(onError: (err: unknown) => void): void {
    if (!this.#closed) this.#durability.startTimer(onError);
  }

  // -- segments (main thread, snapshot.ts) ---------------------------------------------------

  get segment(): number {
    return Atomics.load(this.#i32, kSegment);
  }

  /**
   * Switches appends to segment `next` (created, with its header, and fsynced by the caller).
   * The caller MUST hold the commit lock (an exclusive transaction): no append straddles the switch.
   */
  switchSegment(next: number): void {
    if (next <= this.segment) throw new RangeError(`segment ${next} is not after the current segment ${this.segment}`);
    Atomics.store(this.#i64, kSegmentBytes, BigInt(HEADER_BYTES));
    Atomics.store(this.#i32, kSegment, next);
  }

  /** Main thread: releases the sync lock if `exitedThreadId` held it (also done by afterThreadExit). */
  releaseIfHeldBy(exitedThreadId: number): boolean {
    if (Atomics.compareExchange(this.#i32, kSyncLock, exitedThreadId + 1, 0) !== exitedThreadId + 1) return false;
    Atomics.notify(this.#i64, kDurableSeq);
    return true;
  }

  stats(): WalStats {
    return {
      policy: this.policy,
      segment: this.segment,
      written: Number(Atomics.load(this.#i64, kWrittenSeq)),
      durable: Number(Atomics.load(this.#i64, kDurableSeq)),
      fsyncs: Number(Atomics.load(this.#i64, kFsyncs)),
      failed: this.failed,
    };
  }

  /**
   * Main thread: stops the timer, makes everything durable (unless `flush: false`, which leaves
   * the files as a crash would), closes the files and releases the data folder. Idempotent.
   * Workers must be gone (or no longer committing).
   */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#durability.stopTimer();
    let error: unknown;
    if (options.flush !== false && this.failed === null) await this.flush().catch((err: unknown) => (error = err));
    this.#closed = true;
    await this.#durability.close();
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    this.#fdSegment = -1;
    await this.#onClose?.();
    if (error !== undefined) throw error;
  }
}
