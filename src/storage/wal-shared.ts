/**
 * @module storage/wal-shared
 * What every thread's part of the write-ahead log shares, in one place (as layout.ts is for the
 * store): each named word of the log's SharedArrayBuffer, the failure state every append and
 * acknowledgement checks, and the test-only fault hooks.
 */
import type { FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import { errnoCode, ioError } from './file-system.js';
import type { LexiconsError } from '../errors.js';

// -- the WAL's shared words: the one place they are named -------------------------------------
/** BigInt64 slots. */
export const kWrittenSeq = 0; // sequence number of the last record appended (stored under the commit lock)
export const kDurableSeq = 1; // every record with seq <= this is on disk; only grows (CAS max)
export const kLastCommit = 2; // commit id of the last commit record appended (unpublished if >= the next id)
export const kSegmentBytes = 3; // length of the current segment: where a failed append is cut back to
export const kFsyncs = 4; // fdatasync calls made by all threads (stats, tests)
const I64_SLOTS = 5;
/** Int32 slots, after the BigInt64 region. */
export const kSegment = 0; // number of the segment appends go to (changed under the commit lock)
export const kSealedSynced = 1; // every segment numbered <= this one is sealed and fsynced
export const kSyncLock = 2; // 0 free, else threadId + 1 of the worker running fdatasync
export const kFailed = 3; // 0, or the errno (positive) of the I/O failure that disabled the log
const I32_SLOTS = 4;
/** Byte size of the log's SharedArrayBuffer. */
export const SAB_BYTES = I64_SLOTS * 8 + I32_SLOTS * 4;

/** The two typed views of the log's SharedArrayBuffer. */
export function wordsOf(sab: SharedArrayBuffer): { i64: BigInt64Array; i32: Int32Array } {
  return { i64: new BigInt64Array(sab, 0, I64_SLOTS), i32: new Int32Array(sab, I64_SLOTS * 8, I32_SLOTS) };
}

/** Test-only fault injection (never set in production): replaces the sync file calls. */
export const walTestHooks: {
  writeSync?: (fd: number, buf: Buffer) => number;
  fdatasyncSync?: (fd: number) => void;
  /** Async fdatasync of the main thread's flush. */
  datasync?: (fh: FileHandle) => Promise<void>;
} = {};

/** Raises word `slot` to `value` unless it already is at least that (concurrent raisers: the max wins). */
export function casMax(words: BigInt64Array, slot: number, value: bigint): void;
export function casMax(words: Int32Array, slot: number, value: number): void;
export function casMax(words: BigInt64Array | Int32Array, slot: number, value: bigint | number): void {
  // One body for both word sizes: Atomics and `<` work alike on numbers and bigints.
  const a = words as Int32Array;
  const v = value as number;
  for (let seen = Atomics.load(a, slot); seen < v; ) {
    const prev = Atomics.compareExchange(a, slot, seen, v);
    if (prev === seen) return;
    seen = prev;
  }
}

function errnoOf(err: unknown): number {
  const code = errnoCode(err);
  const n = code ? (constants.errno as Record<string, number>)[code] : undefined;
  return n && n > 0 ? n : constants.errno.EIO;
}

function errnoName(n: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === n) return name;
  return `errno ${n}`;
}

/** The I/O failure that disabled the log (its errno name), or null. */
export function failureOf(i32: Int32Array): string | null {
  const n = Atomics.load(i32, kFailed);
  return n === 0 ? null : errnoName(n);
}

/** Disables the log after an I/O failure (the first one is kept) and wakes every waiter. */
export function markFailed(i64: BigInt64Array, i32: Int32Array, err: unknown): void {
  Atomics.compareExchange(i32, kFailed, 0, errnoOf(err));
  Atomics.notify(i64, kDurableSeq);
}

/** What every commit and acknowledgement gets once the log is disabled. */
export function failedError(i32: Int32Array): LexiconsError {
  return ioError(`the write-ahead log is disabled after an I/O failure (${failureOf(i32)}); nothing is committed until the server restarts and recovers`);
}
