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
 * Its commit id is then reused by the next commit (store.ts repair). The log keeps the commit id of
 * the last record appended (`kLastCommit`); the next appender sees it is >= its own commit id
 * (i.e. it was never published) and first appends an abort record for it. Recovery also treats a
 * record reusing a commit id as superseding the earlier one, so the log stays right even if the
 * abort record was lost. `afterThreadExit` writes the abort record as soon as the main thread can
 * take the commit lock without waiting (it only try-locks) when a worker died.
 *
 * Group commit (policy `always`). Every record gets a sequence number (`kWrittenSeq`, never
 * reused, unlike commit ids). After its commit, a worker that must acknowledge calls
 * {@link Wal.awaitDurable}: if `kDurableSeq` already covers its record it returns; otherwise one
 * worker at a time takes the sync lock, loads `kWrittenSeq` (BEFORE the segment number: every
 * record counted is then in that segment or an older one), fdatasyncs, and raises `kDurableSeq` to
 * what it loaded; the others sleep on `kDurableSeq` with Atomics.wait and wake to find their record
 * covered. While one fdatasync runs, the commits of all other threads pile up behind it and are
 * made durable by the next single fdatasync: concurrent commits share fsyncs. The commit lock is
 * not held during the fsync, so commits are not serialized behind the disk.
 *
 * Segments. A snapshot switches appends to a new segment under the commit lock (`kSegment`);
 * threads notice at their next append and reopen. Sealed segments are fsynced by the next syncer
 * (`kSealedSynced`) before `kDurableSeq` may pass their records; a segment deleted meanwhile is
 * covered by a snapshot and needs nothing.
 *
 * Policies. `everysec`: a main-thread timer runs {@link Wal.flush} (async fdatasync, never
 * blocking the event loop) every second; acknowledgements do not wait. `no`: only snapshots and
 * shutdown sync. A failed fsync marks the log failed (like PostgreSQL after fsyncgate, a retry
 * cannot be trusted): commits are refused until a restart recovers from the disk.
 *
 * The main thread never blocks: it never calls awaitDurable (it uses the async flush), it only
 * try-locks the commit lock at run time (afterThreadExit, snapshots), and it appends with writeSync
 * only when it holds the lock itself.
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { isMainThread, threadId } from 'node:worker_threads';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { ChangeSet } from './api.js';
import { errnoCode, ioError, isNotFound } from './file-system.js';
import type { SharedStore } from './store.js';
import { encodeAbort, encodeCommit, HEADER_BYTES, segmentName } from './wal-format.js';

export type FsyncPolicy = 'always' | 'everysec' | 'no';
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'everysec', 'no'];

// -- the WAL's shared words: the one place they are named -------------------------------------
/** BigInt64 slots. */
const kWrittenSeq = 0; // sequence number of the last record appended (stored under the commit lock)
const kDurableSeq = 1; // every record with seq <= this is on disk; only grows (CAS max)
const kLastCommit = 2; // commit id of the last commit record appended (unpublished if >= the next id)
const kSegmentBytes = 3; // length of the current segment: where a failed append is cut back to
const kFsyncs = 4; // fdatasync calls made by all threads (stats, tests)
const I64_SLOTS = 5;
/** Int32 slots, after the BigInt64 region. */
const kSegment = 0; // number of the segment appends go to (changed under the commit lock)
const kSealedSynced = 1; // every segment numbered <= this one is sealed and fsynced
const kSyncLock = 2; // 0 free, else threadId + 1 of the worker running fdatasync
const kFailed = 3; // 0, or the errno (positive) of the I/O failure that disabled the log
const I32_SLOTS = 4;
const SAB_BYTES = I64_SLOTS * 8 + I32_SLOTS * 4;

type WaitAsync = (arr: BigInt64Array, index: number, value: bigint) => { async: boolean; value: Promise<string> | string };

const HANDLES_VERSION = 1;
/** afterThreadExit: tries on the next event-loop turns first, then on timers up to this period. */
const RETRY_IMMEDIATE = 8;
const RETRY_MAX_MS = 50;
/** A waiter re-checks at least this often (a syncer that died is released by the main thread). */
const WAIT_MS = 20;

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

/** Test-only fault injection (never set in production): replaces the sync file calls. */
export const walTestHooks: {
  writeSync?: (fd: number, buf: Buffer) => number;
  fdatasyncSync?: (fd: number) => void;
  /** Async fdatasync of the main thread's flush. */
  datasync?: (fh: FileHandle) => Promise<void>;
} = {};

function errnoOf(err: unknown): number {
  const code = errnoCode(err);
  const n = code ? (constants.errno as Record<string, number>)[code] : undefined;
  return n && n > 0 ? n : constants.errno.EIO;
}

function errnoName(n: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === n) return name;
  return `errno ${n}`;
}

function casMax(i64: BigInt64Array, slot: number, value: bigint): void {
  for (let seen = Atomics.load(i64, slot); seen < value; ) {
    const prev = Atomics.compareExchange(i64, slot, seen, value);
    if (prev === seen) return;
    seen = prev;
  }
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
  /** Main thread: the async handle its flushes use, and the flush in flight (flushes are serial). */
  #fh: FileHandle | null = null;
  #fhSegment = -1;
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #waiters = 0;
  #onClose: (() => Promise<void>) | null = null;
  #closed = false;

  private constructor(handles: WalHandles) {
    this.handles = handles;
    this.policy = handles.policy;
    this.dir = handles.dir;
    this.#i64 = new BigInt64Array(handles.sab, 0, I64_SLOTS);
    this.#i32 = new Int32Array(handles.sab, I64_SLOTS * 8, I32_SLOTS);
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
    const n = Atomics.load(this.#i32, kFailed);
    return n === 0 ? null : errnoName(n);
  }

  #failedError(): LexiconsError {
    return ioError(`the write-ahead log is disabled after an I/O failure (${this.failed}); nothing is committed until the server restarts and recovers`);
  }

  #fail(err: unknown): void {
    Atomics.compareExchange(this.#i32, kFailed, 0, errnoOf(err));
    Atomics.notify(this.#i64, kDurableSeq);
  }

  #path(segment: number): string {
    return join(this.dir, segmentName(segment));
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
    if (Atomics.load(this.#i32, kFailed) !== 0) throw this.#failedError();
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
        this.#fail(cut);
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
    if (isMainThread) throw new LexiconsError(ErrorCode.TXN, 'Wal.awaitDurable blocks: the main thread must use await wal.flush()');
    const me = threadId + 1;
    for (;;) {
      const durable = Atomics.load(this.#i64, kDurableSeq);
      if (durable >= target) return;
      if (Atomics.load(this.#i32, kFailed) !== 0) throw this.#failedError();
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

  /** Worker, holding the sync lock: fdatasync of sealed segments and the current one. */
  #syncNow(): void {
    const written = Atomics.load(this.#i64, kWrittenSeq); // before the segment: see the module comment
    const segment = Atomics.load(this.#i32, kSegment);
    try {
      for (let s = Atomics.load(this.#i32, kSealedSynced) + 1; s < segment; s++) {
        let fd: number;
        try {
          fd = openSync(this.#path(s), 'r+');
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
      casMaxI32(this.#i32, kSealedSynced, segment - 1);
      (walTestHooks.fdatasyncSync ?? fdatasyncSync)(this.#fdFor(segment));
      Atomics.add(this.#i64, kFsyncs, 1n);
    } catch (err) {
      this.#fail(err);
      throw ioError(`fdatasync of the write-ahead log ${this.#path(segment)} failed; the commit is not acknowledged`, err);
    }
    casMax(this.#i64, kDurableSeq, written);
  }

  /**
   * Any thread, async (never blocks): makes every record appended before the call durable. Used by
   * the everysec timer, by snapshots and shutdown, and by main-thread commits to acknowledge.
   * Rejects with IO (and disables the log) if an fdatasync fails.
   */
  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#flushNow());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #flushNow(): Promise<void> {
    if (Atomics.load(this.#i32, kFailed) !== 0) throw this.#failedError();
    const written = Atomics.load(this.#i64, kWrittenSeq);
    const segment = Atomics.load(this.#i32, kSegment);
    const sealed = Atomics.load(this.#i32, kSealedSynced);
    if (written <= Atomics.load(this.#i64, kDurableSeq) && sealed >= segment - 1) return;
    const datasync = walTestHooks.datasync ?? ((fh: FileHandle) => fh.datasync());
    try {
      for (let s = sealed + 1; s < segment; s++) {
        let fh: FileHandle;
        try {
          fh = await open(this.#path(s), 'r+');
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
      casMaxI32(this.#i32, kSealedSynced, segment - 1);
      if (this.#fhSegment !== segment) {
        const fh = await open(this.#path(segment), 'r+');
        await this.#fh?.close();
        this.#fh = fh;
        this.#fhSegment = segment;
      }
      await datasync(this.#fh!);
      Atomics.add(this.#i64, kFsyncs, 1n);
    } catch (err) {
      this.#fail(err);
      throw ioError(`fdatasync of the write-ahead log in ${this.dir} failed`, err);
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
        if (Atomics.load(this.#i32, kFailed) !== 0) throw this.#failedError();
        const w = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(this.#i64, kDurableSeq, durable);
        if (w.async) await w.value;
      }
    } finally {
      if (--this.#waiters === 0) this.#timer?.unref();
    }
  }

  /** Main thread: starts the once-a-second flush of policy `everysec` (no-op for other policies). */
  startTimer(onError: (err: unknown) => void): void {
    if (this.policy !== 'everysec' || this.#timer || this.#closed) return;
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
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    let error: unknown;
    if (options.flush !== false && this.failed === null) await this.flush().catch((err: unknown) => (error = err));
    this.#closed = true;
    await this.#flushing;
    await this.#fh?.close().catch(() => undefined);
    this.#fh = null;
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    this.#fdSegment = -1;
    await this.#onClose?.();
    if (error !== undefined) throw error;
  }
}

function casMaxI32(i32: Int32Array, slot: number, value: number): void {
  for (let seen = Atomics.load(i32, slot); seen < value; ) {
    const prev = Atomics.compareExchange(i32, slot, seen, value);
    if (prev === seen) return;
    seen = prev;
  }
}
