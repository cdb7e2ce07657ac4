/**
 * @module storage/layout
 * Every named slot of the control SharedArrayBuffer, in one place (like piscina's `symbols.ts`).
 *
 * The control block is one SharedArrayBuffer shared by all threads, holding two regions:
 *
 * ```
 * BigInt64 region (8-byte words, accessed with Atomics on a BigInt64Array)
 *   [0] kCommitId        latest published commit id: THE publish point of every commit
 *   [1] kPendingCommit   commit id being written by the current lock holder (valid while dirty=1)
 *   [2 + t]              per-table last-write commit id (serializability check)
 * Int32 region (4-byte words, accessed with Atomics on an Int32Array), after the BigInt64 region
 *   [0] kLockWord        0 = free, otherwise the owner's threadId + 1
 *   [1] kDirty           1 while a commit is being written (set before the first shared write)
 *   [2] kRepairEpoch     bumped by every dead-writer repair; threads rebuild derived indexes
 *   [3] kLockWaiters     number of threads blocked in Atomics.wait on the lock word (notify hint)
 *   [4] kReclaim         0, or 1 while the reclaimer drains readers and compacts (readers.ts)
 *   [5 + 3t]             per-table row count (version slots published)
 *   [6 + 3t]             per-table dead-version count (superseded versions + tombstones)
 *   [7 + 3t]             per-table compaction epoch: bumped by every reclamation that moved its slots
 *   [5 + 3T + d]         per-dictionary-column entry count (d in schema order)
 *   [5 + 3T + D + 2r]    reader slot r's owner: 0 = free, else the threadId + 1 of its store instance
 *   [6 + 3T + D + 2r]    reader slot r's open flag: 1 while that instance has a transaction or pin open
 * ```
 *
 * Commit ids are BigInt64 so they never wrap; they are converted with Number() (exact up to 2^53).
 * The first commit id is `StoreOptions.initialCommitId` + 1 (a recovered store continues the log).
 *
 * The key stamps of row-level read sets (one Float64 per hash bucket, accessed only under the commit
 * lock) are a SharedArrayBuffer of their own: read-set.ts.
 *
 * The write-ahead log keeps its shared words (appended / durable sequence numbers, the fsync lock,
 * the current segment) in a SharedArrayBuffer of its own; they are all named in wal-shared.ts.
 */

/** BigInt64 slots. */
export const kCommitId = 0;
export const kPendingCommit = 1;
const kI64TableBase = 2;

/** Int32 slots. */
export const kLockWord = 0;
export const kDirty = 1;
export const kRepairEpoch = 2;
export const kLockWaiters = 3;
export const kReclaim = 4;
const kI32TableBase = 5;
/** Per-table Int32 words: row count, dead-version count, compaction epoch. */
const kI32PerTable = 3;
/** Reader slots: SharedStore instances (one per thread, usually) that can be attached at once. */
export const READER_SLOTS = 256;

export function i64LastWrite(table: number): number {
  return kI64TableBase + table;
}

export function i32RowCount(table: number): number {
  return kI32TableBase + kI32PerTable * table;
}

export function i32DeadVersions(table: number): number {
  return kI32TableBase + kI32PerTable * table + 1;
}

export function i32TableEpoch(table: number): number {
  return kI32TableBase + kI32PerTable * table + 2;
}

export function i32DictCount(tableCount: number, dict: number): number {
  return kI32TableBase + kI32PerTable * tableCount + dict;
}

/** The owner word of reader slot r (its open flag is the next word). */
export function i32ReaderOwner(tableCount: number, dicts: number, r: number): number {
  return kI32TableBase + kI32PerTable * tableCount + dicts + 2 * r;
}

function i32Words(tables: number, dicts: number): number {
  return kI32TableBase + kI32PerTable * tables + dicts + 2 * READER_SLOTS;
}

/** Byte size of the control block for a schema with `tables` tables and `dicts` dictionary columns. */
export function controlBytes(tables: number, dicts: number): number {
  return (kI64TableBase + tables) * 8 + i32Words(tables, dicts) * 4;
}

/** Typed views over the control block. */
export class ControlBlock {
  readonly sab: SharedArrayBuffer;
  readonly i64: BigInt64Array;
  readonly i32: Int32Array;
  readonly tableCount: number;
  readonly dictCount: number;

  constructor(sab: SharedArrayBuffer, tables: number, dicts: number) {
    if (sab.byteLength !== controlBytes(tables, dicts)) {
      throw new RangeError(`control block is ${sab.byteLength} bytes, expected ${controlBytes(tables, dicts)}`);
    }
    this.sab = sab;
    this.tableCount = tables;
    this.dictCount = dicts;
    this.i64 = new BigInt64Array(sab, 0, kI64TableBase + tables);
    this.i32 = new Int32Array(sab, (kI64TableBase + tables) * 8, i32Words(tables, dicts));
  }

  static allocate(tables: number, dicts: number): ControlBlock {
    return new ControlBlock(new SharedArrayBuffer(controlBytes(tables, dicts)), tables, dicts);
  }

  commitId(): number {
    return Number(Atomics.load(this.i64, kCommitId));
  }

  rowCount(table: number): number {
    return Atomics.load(this.i32, i32RowCount(table));
  }

  lastWrite(table: number): number {
    return Number(Atomics.load(this.i64, i64LastWrite(table)));
  }

  deadVersions(table: number): number {
    return Atomics.load(this.i32, i32DeadVersions(table));
  }

  repairEpoch(): number {
    return Atomics.load(this.i32, kRepairEpoch);
  }

  tableEpoch(table: number): number {
    return Atomics.load(this.i32, i32TableEpoch(table));
  }
}
