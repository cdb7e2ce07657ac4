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
import { isMainThread } from 'node:worker_threads';
import type * as arrow from 'apache-arrow';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChangeSet, ChannelPosition, CommitResult, Db, HistoryPage, HistoryPolicyResolver, HistoryQuery, RunOptions, StoreStats, Txn } from './api.js';
import { tableToArrow } from './arrow.js';
import { appendColumns, insertAndCommit } from './bulk-append.js';
import { CommitLock, repairIfDirty } from './commit-lock.js';
import { GrowBuf, type Allocator } from './grow-buf.js';
import { commitHistoryRepair, historyTableIds, sweepRequest } from './history.js';
import { historyDisabled } from './history-tables.js';
import { TableIndex } from './indexes.js';
import { ControlBlock, kCommitId } from './layout.js';
import { KeyStamps, STAMP_BYTES } from './read-set.js';
import { pinUntilCollected, ReaderSlot } from './readers.js';
import { VersionReclaim, type ReclaimOptions, type ReclaimStep } from './reclaim.js';
import { tableNameOf, type ModelClass, type Schema } from './schema.js';
import { checkHandles, checkStoreOptions, describeSchema, dictCount, HANDLES_VERSION, type StoreHandles, type StoreOptions } from './store-handles.js';
import { SharedTable } from './table.js';
import type { Engine } from './engine.js';
import { Transaction } from './transaction.js';
import { commitOrRetry, optimisticAttemptsOf, refusePromise, runOrAbort, type Committed } from './transaction-runner.js';

export type { StoreHandles, StoreOptions } from './store-handles.js';

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
  /**
   * This thread's channel history policies (set it in every thread that publishes or sweeps):
   * `Txn.publish` records only for channels it gives a policy, and commits trim by it.
   */
  historyPolicy?: HistoryPolicyResolver;
  /**
   * Cluster mode, in a worker: commits go to the node's commit stream (cluster-record.ts); local
   * ones are refused. `ticket`: what the worker's job sends along (workers/progress.ts CommitTicket).
   */
  remoteCommit?: (txn: Txn, ticket: unknown) => Promise<CommitResult>;

  readonly #control: ControlBlock;
  readonly #tables: SharedTable[];
  readonly #tableIds: Map<string, number>;
  readonly #indexes: Array<TableIndex | undefined>;
  readonly #snapshots = new Map<number, number>();
  readonly #engine: Engine;
  readonly #lock: CommitLock;
  readonly #readers: ReaderSlot;
  #reclaim: VersionReclaim | undefined;

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
    const stamps = new KeyStamps(handles.stamps, handles.hashSeed);
    const lock = (this.#lock = new CommitLock(this.#control));
    const readers = (this.#readers = new ReaderSlot(this.#control, this));
    const self = this;
    this.#engine = {
      schema,
      control: this.#control,
      tables: this.#tables,
      tableIds: this.#tableIds,
      index: (id) => this.#index(id),
      stamps,
      lock: (owner) => lock.lock(owner),
      unlock: (owner) => lock.unlock(owner),
      repairIfDirty: () => repairIfDirty(this.#control, this.#tables, stamps),
      enterReader: () => readers.enter(),
      leaveReader: () => readers.leave(),
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
      history: historyTableIds(this.#tableIds),
      get historyPolicy() {
        return self.historyPolicy;
      },
      get remoteOnly() {
        return self.remoteCommit !== undefined;
      },
    };
  }

  /** Creates a new store in fresh shared memory (main thread). */
  static create(schema: Schema, options: StoreOptions = {}): SharedStore {
    const { rows, max, initial, seed } = checkStoreOptions(options);
    const control = ControlBlock.allocate(schema.tables.length, dictCount(schema));
    Atomics.store(control.i64, kCommitId, BigInt(initial));
    const buffers: SharedArrayBuffer[][] = schema.tables.map(() => []);
    const stamps = new SharedArrayBuffer(STAMP_BYTES);
    const handles: StoreHandles = { version: HANDLES_VERSION, fingerprint: describeSchema(schema), maxBytesPerBuffer: max, hashSeed: seed, control: control.sab, stamps, tables: buffers };
    return new SharedStore(schema, handles, (id) => (label, bytes) => {
      const buf = GrowBuf.allocate(bytes, max, label, true);
      buffers[id]!.push(buf.buffer as SharedArrayBuffer);
      return buf;
    }, rows);
  }

  /** Attaches to a store created in another thread; the schema must match the handles. */
  static attach(schema: Schema, handles: StoreHandles): SharedStore {
    checkHandles(schema, handles);
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
    if (!index) this.#indexes[id] = index = new TableIndex(this.#tables[id]!, () => this.#horizon(), this.handles.hashSeed);
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
    this.#readers.releaseThread(threadId); // its open reads ended with it: they must not block reclamation
    return this.#lock.releaseIfHeldBy(threadId);
  }

  /**
   * One non-blocking step of version reclamation (reclaim.ts; main thread only): when a table has
   * `minDeadVersions` (any, with `force`), drains every thread's readers and compacts it. Call
   * again on a later event-loop turn while it returns `draining`; `startReclaimer` does it all.
   * @example store.reclaim({ force: true }); // { state: 'done', freed: { Counter: 1_000 } }
   */
  reclaim(options: ReclaimOptions = {}): ReclaimStep {
    const parts = { control: this.#control, tables: this.#tables, readers: this.#readers, lock: this.#lock, repairIfDirty: this.#engine.repairIfDirty };
    return (this.#reclaim ??= new VersionReclaim(parts)).step(options);
  }

  /** Ends a reclamation in progress (the workers waiting for it go on). */
  stopReclaim(): void {
    this.#reclaim?.stop('idle');
  }

  /** Keeps every slot in place until the returned function is called (reads over event-loop turns). */
  pinVersions(): () => void {
    return this.#readers.pin();
  }

  // -- transactions ----------------------------------------------------------------------------

  /**
   * An exclusive transaction if the commit lock is free right now, else null: never spins, never
   * waits (the main thread's way to take the lock; retry later, e.g. after setImmediate).
   */
  tryBegin(): Txn | null {
    return this.#lock.tryOnly(() => this.begin({ exclusive: true }));
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
  runSync<T>(fn: (db: Db) => T, options?: RunOptions): Committed<T> {
    const attempts = optimisticAttemptsOf(options);
    for (let i = 0; ; i++) {
      const exclusive = i >= attempts;
      const txn = this.begin({ exclusive });
      const done = commitOrRetry(txn, runOrAbort(txn, (db) => refusePromise(fn(db))), exclusive);
      if (done) return done;
    }
  }

  /** Like {@link runSync}, but `fn` may be async (an exclusive run holds the lock across awaits). */
  async run<T>(fn: (db: Db) => T | Promise<T>, options?: RunOptions): Promise<Committed<T>> {
    const attempts = optimisticAttemptsOf(options);
    for (let i = 0; ; i++) {
      const exclusive = i >= attempts;
      if (exclusive) await this.#lock.localRelease();
      const txn = this.begin({ exclusive });
      const done = commitOrRetry(txn, await runOrAbort(txn, fn), exclusive);
      if (done) return done;
      await this.#lock.localRelease();
    }
  }

  /**
   * Loads rows in one commit (main thread, at start-up, before workers). Rows are full field
   * objects; pk is generated if missing; values are checked with coerceValue but transforms are
   * NOT applied (saved data is already transformed). Returns the number of rows loaded.
   */
  bulkLoad(table: ModelClass | string, rows: Iterable<Record<string, unknown>>): number {
    return insertAndCommit(this.begin({ exclusive: true }) as Transaction, table, rows);
  }

  /**
   * Main thread, at start-up: publishes as one commit the rows `fill` wrote straight into the
   * table's column buffers from slot `start` (it returns how many). Checks nothing, logs nothing
   * (bulk-append.ts: binary snapshot files, CSV rows into an empty table).
   */
  appendColumns(table: ModelClass | string, fill: (t: SharedTable, start: number) => number): number {
    return appendColumns(this.#engine, this.#tableId(table), fill);
  }

  // -- channel history (history.ts) ---------------------------------------------------------------

  /** Runs `read` in a read-only transaction at the latest snapshot: never takes the lock, never waits. */
  #read<T>(read: (txn: Txn) => T): T {
    const txn = this.begin();
    try {
      return read(txn);
    } finally {
      txn.abort();
    }
  }

  /**
   * The retained history of `channel` at the latest commit: its position and the items with
   * offset > `after`, oldest first, at most `limit`; null when the channel never kept history.
   * Lock-free (any thread, the main thread included); one pk probe per item. Recovery from a
   * client's (epoch, offset) is complete when the epoch matches and `offset + 1 >= oldest`.
   * @example
   * const page = store.history('Public', { after: 42, limit: 1000 });
   */
  history(channel: string, query?: HistoryQuery): HistoryPage | null {
    return this.#read((txn) => txn.history(channel, query));
  }

  /** The position (epoch, last offset, oldest retained) of `channel` at the latest commit, or null. Lock-free. */
  channelPosition(channel: string): ChannelPosition | null {
    return this.#read((txn) => txn.channelPosition(channel));
  }

  /**
   * Deletes the retained history of `channel` and gives it a new epoch, in one commit; offsets go
   * on after the old top. Returns the new position (null for a channel without history). Takes the
   * commit lock: call it from a worker (on the main thread it spins, 5 s at most).
   */
  resetHistory(channel: string): ChannelPosition | null {
    const txn = this.begin();
    try {
      txn.resetHistory(channel);
      const result = txn.commit();
      if (!result.ok) throw new LexiconsError(ErrorCode.TXN, `resetHistory: ${result.message}`);
    } finally {
      txn.abort();
    }
    return this.channelPosition(channel);
  }

  /**
   * A trim sweep (for a periodic task): deletes, in one commit, publications beyond the policy of
   * every channel `historyPolicy` knows (`size`, and `maxAgeSeconds` measured against `now`), at most
   * `maxRows` (default 10,000); channels it gives no policy are left alone. Returns the rows
   * deleted and whether more remain. Never blocks the main thread: there it returns null when the
   * commit lock is busy (try again later).
   */
  trimHistory(now = Date.now(), options: { maxRows?: number } = {}): { deleted: number; more: boolean } | null {
    const request = sweepRequest(this.historyPolicy, now, options);
    const txn = this.begin() as Transaction;
    try {
      txn.requestSweep(request);
      // The main thread never waits for the lock: it only tries (null when busy).
      const result = isMainThread ? this.#lock.tryOnly(() => txn.commit()) : txn.commit();
      if (result === null) return null;
      if (!result.ok) throw new LexiconsError(ErrorCode.TXN, `trimHistory: ${result.message}`);
      const outcome = txn.historyOutcome;
      return { deleted: outcome?.deleted ?? 0, more: outcome?.more ?? false };
    } finally {
      txn.abort();
    }
  }

  /**
   * At open, before anything else commits (recovery.ts calls it): makes every channel's history
   * consistent again. A channel whose retained range [oldest, offset] is not exactly the rows
   * present (rows deleted by other means, publications without their channel row, rows past the
   * top), or every channel when `renewEpochs` (the history files are older than the rest), gets a
   * new epoch, keeps the contiguous run of rows ending at its top, and its offsets go on after the
   * highest one seen. Rows below `oldest` are deleted. Returns the channels whose epoch changed.
   * `dryRun`: commits nothing, returns the channels the repair would change (cluster mode's check).
   */
  repairHistory(options: { renewEpochs?: boolean; dryRun?: boolean } = {}): string[] {
    const ids = historyTableIds(this.#tableIds);
    if (!ids) throw historyDisabled('repairHistory');
    const txn = this.begin({ exclusive: true }) as Transaction;
    try {
      const view = (id: number) => ({ table: this.#tables[id]!, index: this.#index(id) });
      return commitHistoryRepair(txn, view(ids.channel), view(ids.publication), options.renewEpochs === true, options.dryRun === true);
    } finally {
      txn.abort(); // after a commit: nothing left to release
    }
  }

  /** Latest published commit id. */
  snapshot(): number {
    return this.#control.commitId();
  }

  /** Committed live rows at a snapshot (default latest), lock-free; an older snapshot only if pinned since (pinVersions). */
  *scan(table: ModelClass | string, snapshot?: number): IterableIterator<{ pk: string } & Record<string, unknown>> {
    const t = this.#tables[this.#tableId(table)]!;
    const unpin = this.pinVersions();
    try {
      const s = snapshot ?? this.#control.commitId(); // commit id before row count
      const rows = t.rowCount();
      for (let v = 0; v < rows; v++) if (t.isVisible(v, s)) yield t.readRow(v);
    } finally {
      unpin();
    }
  }

  /** An Arrow Table of the latest committed rows: zero-copy without dead versions (pinned until collected), else a copy. */
  toArrow(table: ModelClass | string): arrow.Table {
    const id = this.#tableId(table);
    const unpin = this.pinVersions();
    const zeroCopy = this.#control.deadVersions(id) === 0; // only a compaction lowers it, and none runs while pinned
    let view: arrow.Table | undefined;
    try {
      return (view = tableToArrow(this.#tables[id]!, this.#control, this.handles.maxBytesPerBuffer));
    } finally {
      if (zeroCopy && view !== undefined) pinUntilCollected(view, unpin);
      else unpin();
    }
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
