/**
 * @module storage/store
 * The shared-memory database: one {@link SharedStore} per thread over the same SharedArrayBuffers.
 *
 * The main thread creates the store (and may bulk-load it before workers start), passes
 * `store.handles` to each worker (workerData or postMessage), and every worker attaches with the
 * same schema. Transactions are optimistic and serializable (see transaction.ts for the why).
 *
 * @example
 * // main thread
 * const store = SharedStore.create(compileSchema([User, ChatMessage]));
 * store.bulkLoad(User, rowsFromCsv);
 * new Worker(url, { workerData: store.handles });
 * // worker
 * const store = SharedStore.attach(compileSchema([User, ChatMessage]), workerData);
 * const { value } = store.runSync((db) => db.create(ChatMessage, { content: 'hi' }));
 */
import { isMainThread, threadId } from 'node:worker_threads';
import type * as arrow from 'apache-arrow';
import { ErrorCode, isLexiconsError, LexiconsError } from '../errors.js';
import type { ChangeSet, Db, RunOptions, StoreStats, Txn } from './api.js';
import { tableNameOf, type ModelClass, type Schema } from './schema.js';
import { GrowBuf, type Allocator } from './columns.js';
import { ControlBlock, i32DeadVersions, i32RowCount, i64LastWrite, kCommitId, kDirty, kLockWaiters, kLockWord, kPendingCommit, kRepairEpoch } from './layout.js';
import { SharedTable } from './table.js';
import { TableIndex } from './indexes.js';
import { Transaction, type Engine } from './transaction.js';
import { insertRow } from './transaction-db.js';
import { tableToArrow } from './arrow.js';

/** Everything a worker needs to attach: structured-cloneable (SharedArrayBuffers, numbers, strings). */
export interface StoreHandles {
  readonly version: number;
  /** JSON description of the schema the buffers were laid out for. */
  readonly fingerprint: string;
  readonly maxBytesPerBuffer: number;
  readonly control: SharedArrayBuffer;
  /** Per table (schema order), its buffers in allocation order. */
  readonly tables: readonly (readonly SharedArrayBuffer[])[];
}

export interface StoreOptions {
  /** Rows per table the buffers are first sized for (they grow). Default 1024. */
  initialRows?: number;
  /** Largest size any single buffer may grow to. Default 1 GiB. */
  maxBytesPerBuffer?: number;
  /**
   * Commit id the store starts at (its first commit gets this + 1). Default 0. A store recovered
   * from a data folder starts after the last logged commit so that commit ids stay monotonic across
   * restarts (see recovery.ts).
   */
  initialCommitId?: number;
}

const HANDLES_VERSION = 1;
const DEFAULT_MAX_BYTES = 1 << 30;
/** The main thread never waits on the lock; it gives up after spinning this long. */
const MAIN_THREAD_SPIN_MS = 5000;
/** Thrown by #lock under tryBegin when another thread holds the lock (caught there). */
const LOCK_BUSY = new Error('the commit lock is busy');
/** Failed lock attempts a worker spins through before it waits. */
const SPIN_TRIES = 200;
/** A worker re-checks the lock word at least this often while waiting. */
const WAIT_MS = 20;

function describeSchema(schema: Schema): string {
  return JSON.stringify(
    schema.tables.map((t) => ({
      table: t.name,
      fields: t.fields.map((f) => ({ name: f.name, kind: f.kind, element: f.element ?? null, ref: f.ref ?? null, nullable: f.nullable, unique: f.unique, indexed: f.indexed, dictionary: f.dictionary })),
    })),
  );
}

function schemaMismatch(stored: string, given: string): string {
  const a = JSON.parse(stored) as Array<{ table: string; fields: unknown[] }>;
  const b = JSON.parse(given) as Array<{ table: string; fields: unknown[] }>;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y || x.table !== y.table) return `table #${i}: store has ${x?.table ?? 'none'}, schema has ${y?.table ?? 'none'}`;
    for (let j = 0; j < Math.max(x.fields.length, y.fields.length); j++) {
      const fx = JSON.stringify(x.fields[j] ?? null);
      const fy = JSON.stringify(y.fields[j] ?? null);
      if (fx !== fy) return `table ${x.table}, field #${j}: store has ${fx}, schema has ${fy}`;
    }
  }
  return 'unknown difference';
}

function dictCount(schema: Schema): number {
  return schema.tables.reduce((n, t) => n + t.fields.filter((f) => f.dictionary).length, 0);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

export class SharedStore {
  readonly schema: Schema;
  readonly handles: StoreHandles;
  /** Called in the committing thread, under the commit lock, right after a commit is published. */
  onCommit?: (changes: ChangeSet) => void;
  /**
   * Called in the committing thread, under the commit lock, before any shared write of a commit
   * (for a write-ahead log that must be durable before publication). A throw aborts the commit.
   */
  onBeforePublish?: (changes: ChangeSet) => void;

  readonly #control: ControlBlock;
  readonly #tables: SharedTable[];
  readonly #tableIds: Map<string, number>;
  readonly #indexes: Array<TableIndex | undefined>;
  readonly #snapshots = new Map<number, number>();
  readonly #engine: Engine;
  #lockOwner: object | null = null;
  /** Set by tryBegin only: #lock then fails at once instead of spinning or waiting. */
  #tryOnly = false;
  #localWaiters: Array<() => void> = [];

  private constructor(schema: Schema, handles: StoreHandles, alloc: (table: number) => Allocator, rows: number) {
    this.schema = schema;
    this.handles = handles;
    this.#control = new ControlBlock(handles.control, schema.tables.length, dictCount(schema));
    let dictBase = 0;
    this.#tables = schema.tables.map((t, id) => {
      const table = new SharedTable(t, id, this.#control, alloc(id), rows, dictBase);
      dictBase += t.fields.filter((f) => f.dictionary).length;
      return table;
    });
    this.#tableIds = new Map(schema.tables.map((t, id) => [t.name, id]));
    this.#indexes = schema.tables.map(() => undefined);
    const self = this;
    this.#engine = {
      schema,
      control: this.#control,
      tables: this.#tables,
      tableIds: this.#tableIds,
      index: (id) => this.#index(id),
      lock: (owner) => this.#lock(owner),
      unlock: (owner) => this.#unlock(owner),
      repairIfDirty: () => this.#repairIfDirty(),
      openSnapshot: (s) => this.#snapshots.set(s, (this.#snapshots.get(s) ?? 0) + 1),
      closeSnapshot: (s) => {
        const n = (this.#snapshots.get(s) ?? 1) - 1;
        if (n <= 0) this.#snapshots.delete(s);
        else this.#snapshots.set(s, n);
      },
      get beforePublish() {
        return self.onBeforePublish;
      },
      get afterPublish() {
        return self.onCommit;
      },
    };
  }

  /** Creates a new store in fresh shared memory (main thread). */
  static create(schema: Schema, options: StoreOptions = {}): SharedStore {
    const rows = options.initialRows ?? 1024;
    if (!Number.isInteger(rows) || rows < 1) throw new LexiconsError(ErrorCode.OPTION, 'options.initialRows must be a positive integer');
    const max = options.maxBytesPerBuffer ?? DEFAULT_MAX_BYTES;
    if (!Number.isInteger(max) || max < 1024) throw new LexiconsError(ErrorCode.OPTION, 'options.maxBytesPerBuffer must be an integer >= 1024');
    const initial = options.initialCommitId ?? 0;
    if (!Number.isSafeInteger(initial) || initial < 0) throw new LexiconsError(ErrorCode.OPTION, 'options.initialCommitId must be a non-negative safe integer');
    const control = ControlBlock.allocate(schema.tables.length, dictCount(schema));
    Atomics.store(control.i64, kCommitId, BigInt(initial));
    const buffers: SharedArrayBuffer[][] = schema.tables.map(() => []);
    const handles: StoreHandles = { version: HANDLES_VERSION, fingerprint: describeSchema(schema), maxBytesPerBuffer: max, control: control.sab, tables: buffers };
    return new SharedStore(schema, handles, (id) => (label, bytes) => {
      const buf = GrowBuf.allocate(bytes, max, label, true);
      buffers[id]!.push(buf.buffer as SharedArrayBuffer);
      return buf;
    }, rows);
  }

  /** Attaches to a store created in another thread; the schema must match the handles. */
  static attach(schema: Schema, handles: StoreHandles): SharedStore {
    if (!handles || handles.version !== HANDLES_VERSION || !(handles.control instanceof SharedArrayBuffer)) {
      throw new LexiconsError(ErrorCode.OPTION, 'SharedStore.attach: handles are not StoreHandles of this lexicons version');
    }
    const given = describeSchema(schema);
    if (given !== handles.fingerprint) {
      throw new LexiconsError(ErrorCode.SCHEMA, `SharedStore.attach: the schema does not match the store (${schemaMismatch(handles.fingerprint, given)})`);
    }
    return new SharedStore(schema, handles, (id) => {
      const list = handles.tables[id] ?? [];
      let next = 0;
      return (label) => {
        const sab = list[next++];
        if (!(sab instanceof SharedArrayBuffer)) throw new LexiconsError(ErrorCode.OPTION, `SharedStore.attach: missing buffer for ${label}`);
        return new GrowBuf(sab, label);
      };
    }, 1);
  }

  #index(id: number): TableIndex {
    let index = this.#indexes[id];
    if (!index) this.#indexes[id] = index = new TableIndex(this.#tables[id]!, () => this.#horizon());
    return index;
  }

  /** Oldest snapshot an open transaction of this thread reads at (index pruning horizon). */
  #horizon(): number {
    let min = this.#control.commitId();
    for (const s of this.#snapshots.keys()) if (s < min) min = s;
    return min;
  }

  #tableId(table: ModelClass | string): number {
    const name = tableNameOf(table);
    const id = this.#tableIds.get(name);
    if (id === undefined) throw new LexiconsError(ErrorCode.NOT_FOUND, `Unknown table ${name}`);
    return id;
  }

  // -- the commit lock -------------------------------------------------------------------------

  #lock(owner: object): boolean {
    if (this.#lockOwner !== null) return false; // another transaction of this thread holds it
    const i32 = this.#control.i32;
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
    this.#lockOwner = owner;
    return true;
  }

  #unlock(owner: object): void {
    if (this.#lockOwner !== owner) return;
    this.#lockOwner = null;
    const i32 = this.#control.i32;
    Atomics.store(i32, kLockWord, 0);
    if (Atomics.load(i32, kLockWaiters) > 0) Atomics.notify(i32, kLockWord, 1);
    const waiters = this.#localWaiters;
    this.#localWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when no transaction of this thread holds the lock. */
  #localRelease(): Promise<void> {
    if (this.#lockOwner === null) return Promise.resolve();
    return new Promise((resolve) => this.#localWaiters.push(resolve));
  }

  /**
   * Under the lock: if the previous holder died mid-commit (dirty = 1), undo its unpublished
   * commit. Its slots are the contiguous tail of each table with begin == pending; `next` links
   * into them are the only other writes it may have published. O(rows), and rare.
   */
  #repairIfDirty(): void {
    const c = this.#control;
    if (Atomics.load(c.i32, kDirty) === 0) return;
    const pending = Number(Atomics.load(c.i64, kPendingCommit));
    const latest = c.commitId();
    if (pending > latest) {
      Atomics.add(c.i32, kRepairEpoch, 1);
      for (const t of this.#tables) {
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
    }
    Atomics.store(c.i32, kDirty, 0);
  }

  /**
   * Frees the commit lock if thread `threadId` holds it (call on worker exit). Never blocks. The
   * next lock holder repairs any half-written commit.
   * @example
   * const id = worker.threadId; // worker.threadId is -1 once the worker has exited
   * worker.on('exit', () => store.releaseIfHeldBy(id));
   */
  releaseIfHeldBy(threadId: number): boolean {
    if (!Number.isInteger(threadId) || threadId < 0) {
      throw new LexiconsError(ErrorCode.OPTION, `releaseIfHeldBy: threadId must be a non-negative integer, got ${threadId} (read worker.threadId while the worker runs: it is -1 in its 'exit' handler)`);
    }
    const i32 = this.#control.i32;
    if (Atomics.compareExchange(i32, kLockWord, threadId + 1, 0) !== threadId + 1) return false;
    Atomics.notify(i32, kLockWord, 1);
    return true;
  }

  // -- transactions ----------------------------------------------------------------------------

  /**
   * An exclusive transaction if the commit lock is free right now, else null: never spins, never
   * waits (the main thread's way to take the lock; retry later, e.g. after setImmediate).
   */
  tryBegin(): Txn | null {
    if (this.#lockOwner !== null) return null;
    this.#tryOnly = true;
    try {
      return this.begin({ exclusive: true });
    } catch (err) {
      if (err === LOCK_BUSY || (isLexiconsError(err, 'TXN') && Atomics.load(this.#control.i32, kLockWord) === threadId + 1)) return null;
      throw err;
    } finally {
      this.#tryOnly = false;
    }
  }

  /** Starts a transaction at the latest snapshot. `exclusive` holds the commit lock until commit/abort. */
  begin(options?: { exclusive?: boolean }): Txn {
    return new Transaction(this.#engine, options?.exclusive === true);
  }

  /**
   * Runs `fn` in a transaction and commits, re-running it at a fresh snapshot on conflict; after
   * `optimisticAttempts` conflicts it runs under the exclusive lock. Errors thrown by `fn` abort
   * (nothing becomes visible) and propagate; a unique violation found at commit throws UNIQUE.
   */
  runSync<T>(fn: (db: Db) => T, options?: RunOptions): { value: T; commitId: number; changes: ChangeSet } {
    const attempts = checkAttempts(options);
    for (let i = 0; ; i++) {
      const txn = this.begin({ exclusive: i >= attempts });
      let value: T;
      try {
        value = fn(txn.db);
        if (isThenable(value)) {
          Promise.resolve(value).catch(() => undefined);
          throw new LexiconsError(ErrorCode.TXN, 'runSync: the function returned a Promise; use run() for async functions');
        }
      } catch (err) {
        txn.abort();
        throw err;
      }
      const result = txn.commit();
      if (result.ok) return { value, commitId: result.commitId, changes: result.changes };
      if (result.reason === 'unique') throw new LexiconsError(ErrorCode.UNIQUE, result.message);
      if (i >= attempts) throw new LexiconsError(ErrorCode.TXN, `exclusive commit failed: ${result.message}`);
    }
  }

  /** Like {@link runSync}, but `fn` may be async (an exclusive run holds the lock across awaits). */
  async run<T>(fn: (db: Db) => T | Promise<T>, options?: RunOptions): Promise<{ value: T; commitId: number; changes: ChangeSet }> {
    const attempts = checkAttempts(options);
    for (let i = 0; ; i++) {
      const exclusive = i >= attempts;
      if (exclusive) await this.#localRelease();
      const txn = this.begin({ exclusive });
      let value: T;
      try {
        value = await fn(txn.db);
      } catch (err) {
        txn.abort();
        throw err;
      }
      const result = txn.commit();
      if (result.ok) return { value, commitId: result.commitId, changes: result.changes };
      if (result.reason === 'unique') throw new LexiconsError(ErrorCode.UNIQUE, result.message);
      if (exclusive) throw new LexiconsError(ErrorCode.TXN, `exclusive commit failed: ${result.message}`);
      await this.#localRelease();
    }
  }

  /**
   * Loads rows in one commit (main thread, at start-up, before workers). Rows are full field
   * objects; pk is generated if missing; values are checked with coerceValue but transforms are
   * NOT applied (saved data is already transformed). Returns the number of rows loaded.
   */
  bulkLoad(table: ModelClass | string, rows: Iterable<Record<string, unknown>>): number {
    const txn = this.begin({ exclusive: true }) as Transaction;
    try {
      const id = txn.tableId(table);
      let n = 0;
      for (const row of rows) {
        insertRow(txn, id, row, false);
        n++;
      }
      const result = txn.commit();
      if (!result.ok) throw new LexiconsError(result.reason === 'unique' ? ErrorCode.UNIQUE : ErrorCode.TXN, result.message);
      return n;
    } catch (err) {
      txn.abort();
      throw err;
    }
  }

  /** Latest published commit id. */
  snapshot(): number {
    return this.#control.commitId();
  }

  /** Committed live rows at a snapshot (default latest) as plain objects; lock-free. */
  *scan(table: ModelClass | string, snapshot?: number): IterableIterator<{ pk: string } & Record<string, unknown>> {
    const t = this.#tables[this.#tableId(table)]!;
    const s = snapshot ?? this.#control.commitId(); // commit id before row count
    const rows = t.rowCount();
    for (let v = 0; v < rows; v++) if (t.isVisible(v, s)) yield t.readRow(v);
  }

  /** An Apache Arrow Table of the latest committed rows (zero-copy when no row was ever superseded). */
  toArrow(table: ModelClass | string): arrow.Table {
    return tableToArrow(this.#tables[this.#tableId(table)]!, this.#control, this.handles.maxBytesPerBuffer);
  }

  stats(): StoreStats {
    const c = this.#control;
    const stats: StoreStats = { commitId: c.commitId(), tables: {} };
    for (const t of this.#tables) {
      const versions = t.rowCount();
      stats.tables[t.schema.name] = { rows: versions - c.deadVersions(t.id), versions, bytes: t.bytes() };
    }
    return stats;
  }
}

function checkAttempts(options?: RunOptions): number {
  const attempts = options?.optimisticAttempts ?? 3;
  if (!Number.isInteger(attempts) || attempts < 0) throw new LexiconsError(ErrorCode.OPTION, 'options.optimisticAttempts must be a non-negative integer');
  return attempts;
}

