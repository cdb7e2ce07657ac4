/**
 * @module storage/transaction
 * Optimistic, serializable transactions over the shared append-only version store.
 *
 * WHY IT IS BUILT THIS WAY
 *
 * Many worker threads run signals against one database that lives in SharedArrayBuffers. We want
 * (1) readers that never block and never see a half-written row, (2) writers that never block
 * readers, (3) serializable transactions, (4) survival of a thread that dies mid-commit.
 *
 * Append-only versions (MVCC). A row is a chain of immutable versions, one per slot. An update
 * appends a new version and points the old one's `next` at it; a delete appends a tombstone.
 * Versions no transaction can see any more are reclaimed by compaction (reclaim.ts), only while
 * no transaction is open anywhere, so a transaction never sees a slot move. A
 * version v is visible at snapshot S iff `begin[v] <= S` and (`next[v] === -1` or
 * `begin[next[v]] > S`) and v is not a tombstone. Published slot data is never modified, so a
 * reader cannot observe a torn Float64/BigInt64 or a half-rewritten string; the one word mutated
 * after publication is the Int32 `next`, always accessed with Atomics.
 *
 * Optimistic concurrency. A transaction reads at its snapshot S, buffers its writes locally
 * (write-set.ts: per table, pk -> new values or tombstone; an undo log gives savepoints) and
 * records what it read (read-set.ts: the keys it read by pk or index, the tables it scanned).
 * Commit takes the commit lock, validates that
 * nothing it read changed since S, and publishes (commit-protocol.ts: the publish order, and the
 * repair of a writer that died mid-commit); a failed validation returns `conflict` and the runner
 * re-runs the function at a fresh snapshot (transaction-runner.ts). After `optimisticAttempts`
 * conflicts the runner runs the function under `begin({ exclusive: true })`, which takes the lock
 * before reading: it cannot conflict, so progress is guaranteed even under heavy contention.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChannelPosition, WrittenKeys, CommitResult, Db, HistoryPage, HistoryQuery, Txn } from './api.js';
import { recordOf, type CommitRecord } from './cluster-record.js';
import { firstConflictStep, publishCommit, validateCommit } from './commit-protocol.js';
import type { Engine } from './engine.js';
import { parseFilters } from './filters.js';
import type { HistoryOutcome, SweepRequest } from './history.js';
import type { TableIndex } from './indexes.js';
import { copyRow, select, type ReadContext, type Row } from './query.js';
import { ReadSet } from './read-set.js';
import { ChangesSince } from './since.js';
import { tableNameOf, type ModelClass, type TableSchema } from './schema.js';
import { TxnDb } from './transaction-db.js';
import { TxnHistory } from './transaction-history.js';
import { commitPlan, emptyTableWrites, pendingRows, track, type Pending, type TablePlan, type TableWrites } from './write-set.js';

/** A #log entry that stands for one recorded history operation (rollbackTo pops it from the history's ops). */
const HISTORY_LOG_ID = -1;

const EMPTY_SET: ReadonlySet<number> = new Set();

export class Transaction implements Txn {
  readonly db: Db;
  #snapshot: number;
  readonly exclusive: boolean;
  readonly #engine: Engine;
  readonly #writes = new Map<number, TableWrites>();
  readonly #log: Array<{ id: number; pk: string; prev: Pending | undefined }> = [];
  #reads: ReadSet;
  readonly #synced = new Set<number>();
  /** Publications, resets and a trim sweep, applied at commit under the lock. */
  readonly #history: TxnHistory;
  /** Undo-log length at the start of each step (`step()`), in step order. */
  readonly #steps: number[] = [];
  #done = false;
  /** What the history part of the commit did (set by a commit that had history work). */
  historyOutcome: HistoryOutcome | undefined;
  /** The history rows' time and the seed of new epochs, when a cluster record dictates them (cluster-record.ts). */
  historyClock: { now: number; epochSeed: string } | undefined;

  constructor(engine: Engine, exclusive: boolean) {
    this.#engine = engine;
    this.exclusive = exclusive;
    this.#reads = new ReadSet(engine.stamps.seed, engine.remoteOnly);
    engine.enterReader(); // before the lock: a reader waiting for a reclamation holds no lock
    try {
      if (exclusive) this.#lockExclusive();
    } catch (err) {
      engine.leaveReader(); // a busy lock under tryOnly throws too
      throw err;
    }
    this.#snapshot = engine.control.commitId();
    engine.openSnapshot(this.#snapshot);
    this.db = new TxnDb(this, engine.schema);
    this.#history = new TxnHistory(engine, (id) => this.#index(id));
  }

  /** The commit id this transaction reads at (moves forward only in a rebase, see {@link commit}). */
  get snapshot(): number {
    return this.#snapshot;
  }

  #lockExclusive(): void {
    const engine = this.#engine;
    if (!engine.lock(this)) throw new LexiconsError(ErrorCode.TXN, 'cannot begin an exclusive transaction: another transaction of this thread holds the commit lock');
    try {
      engine.repairIfDirty();
    } catch (err) {
      engine.unlock(this);
      throw err;
    }
  }

  #assertOpen(): void {
    if (this.#done) throw new LexiconsError(ErrorCode.TXN, 'transaction already committed or aborted');
  }

  // -- table access --------------------------------------------------------------------------

  tableId(ref: ModelClass | string): number {
    this.#assertOpen();
    const name = tableNameOf(ref);
    const id = this.#engine.tableIds.get(name);
    if (id === undefined) throw new LexiconsError(ErrorCode.NOT_FOUND, `Unknown table ${name}`);
    return id;
  }

  tableSchema(id: number): TableSchema {
    return this.#engine.tables[id]!.schema;
  }

  /** The index of table `id`, caught up at least to this snapshot. */
  #index(id: number): TableIndex {
    const index = this.#engine.index(id);
    if (!this.#synced.has(id)) {
      index.sync();
      this.#synced.add(id);
    }
    return index;
  }

  /** A read context for table `id`; the read path records the keys or the scan it reads. */
  context(id: number): ReadContext {
    const w = this.#writes.get(id);
    const reads = this.#reads;
    return {
      readKey: (k, value) => reads.key(id, k, value),
      readAll: () => reads.table(id),
      table: this.#engine.tables[id]!,
      index: this.#index(id),
      snapshot: this.snapshot,
      shadowed: w?.shadowed ?? EMPTY_SET,
      pending: w ? pendingRows(w) : [],
      resolveRef: (target, sub) => {
        const tid = this.tableId(target);
        return new Set(select(this.context(tid), parseFilters(this.tableSchema(tid), sub)).map((r) => r.pk));
      },
    };
  }

  /** Current row of `pk` (own writes first), without recording a read. */
  currentRow(id: number, pk: string): Row | null {
    const p = this.#writes.get(id)?.rows.get(pk);
    if (p) return p.row;
    const v = this.#index(id).lookupPk(pk, this.snapshot);
    return v < 0 ? null : this.#engine.tables[id]!.readRow(v);
  }

  /** Current row of `pk` as a fresh object the caller may keep; records a read of the key `pk`. */
  readRow(id: number, pk: string): Row | null {
    this.#reads.key(id, -1, pk);
    const p = this.#writes.get(id)?.rows.get(pk);
    if (p) return p.row === null ? null : copyRow(p.row);
    const v = this.#index(id).lookupPk(pk, this.snapshot);
    return v < 0 ? null : this.#engine.tables[id]!.readRow(v);
  }

  /**
   * {@link readRow} for a write of the same row: the fresh row and the committed version the write
   * will replace (own write's base, else the version visible at the snapshot; -1 if none), so that
   * `put(id, pk, row, base)` needs no second pk lookup. Null when the row does not exist.
   */
  readForWrite(id: number, pk: string): { row: Row; base: number } | null {
    this.#reads.key(id, -1, pk);
    const p = this.#writes.get(id)?.rows.get(pk);
    if (p) return p.row === null ? null : { row: copyRow(p.row), base: p.base };
    const v = this.#index(id).lookupPk(pk, this.snapshot);
    return v < 0 ? null : { row: this.#engine.tables[id]!.readRow(v), base: v };
  }

  /** Throws UNIQUE if another row (at this snapshot, incl. own writes) holds `value` in field k. */
  checkUnique(id: number, k: number, value: unknown, pk: string): void {
    if (value === null) return;
    const t = this.#engine.tables[id]!;
    const f = t.schema.fields[k]!;
    const w = this.#writes.get(id);
    const clash = (): never => {
      throw new LexiconsError(ErrorCode.UNIQUE, `${t.schema.name}.${f.name}: value ${JSON.stringify(value)} already exists (unique field)`);
    };
    for (const v of this.#index(id).lookupField(k, value, this.snapshot)) {
      if (w?.shadowed.has(v)) continue;
      if (t.readPk(v) !== pk) clash();
    }
    const holders = w?.unique.get(k)?.get(value);
    if (holders) for (const p of holders) if (p !== pk) clash();
  }

  /**
   * Buffers a write (row = full new values, null = delete). `known`: the base {@link readForWrite}
   * returned for this pk in this transaction, with no write of the pk in between (saves a lookup).
   */
  put(id: number, pk: string, row: Row | null, known?: number): void {
    this.#assertOpen();
    const t = this.tableSchema(id);
    let w = this.#writes.get(id);
    if (!w) this.#writes.set(id, (w = emptyTableWrites(t)));
    const prev = w.rows.get(pk);
    const base = prev ? prev.base : known ?? this.#index(id).lookupPk(pk, this.snapshot);
    this.#log.push({ id, pk, prev });
    if (prev) track(w, t, pk, prev.row, false);
    w.rows.set(pk, { row, base });
    track(w, t, pk, row, true);
    if (base >= 0) w.shadowed.add(base);
  }

  savepoint(): number {
    this.#assertOpen();
    return this.#log.length;
  }

  step(): number {
    this.#assertOpen();
    this.#reads.step = this.#steps.length;
    return this.#steps.push(this.#log.length) - 1;
  }

  /** The step of the first buffered write of row `pk` of table `id` (under the lock, on a conflict only). */
  #writeStep(id: number, pk: string): number {
    const i = this.#log.findIndex((e) => e.id === id && e.pk === pk);
    return Math.max(0, this.#steps.findLastIndex((start) => start <= i));
  }

  /** Steps before `step` are valid at `latest` (firstConflictStep): drop the later ones, read at `latest`. */
  #rebase(step: number, latest: number): void {
    this.rollbackTo(this.#steps[step]!);
    this.#steps.length = step;
    this.#reads.dropFrom(step);
    const engine = this.#engine;
    engine.openSnapshot(latest);
    engine.closeSnapshot(this.#snapshot);
    this.#snapshot = latest;
    this.#synced.clear(); // indexes catch up to the new snapshot on next use
  }

  rollbackTo(savepoint: number): void {
    this.#assertOpen();
    if (!Number.isInteger(savepoint) || savepoint < 0 || savepoint > this.#log.length) {
      throw new LexiconsError(ErrorCode.TXN, `invalid savepoint ${savepoint}`);
    }
    while (this.#log.length > savepoint) {
      const e = this.#log.pop()!;
      if (e.id === HISTORY_LOG_ID) {
        this.#history.ops.pop();
        continue;
      }
      const w = this.#writes.get(e.id)!;
      const t = this.tableSchema(e.id);
      const cur = w.rows.get(e.pk);
      if (cur) track(w, t, e.pk, cur.row, false);
      if (e.prev) {
        w.rows.set(e.pk, e.prev);
        track(w, t, e.pk, e.prev.row, true);
      } else {
        w.rows.delete(e.pk);
        if (cur && cur.base >= 0) w.shadowed.delete(cur.base);
      }
    }
  }

  // -- channel history (transaction-history.ts) ---------------------------------------------------

  publish(channel: string, text: string): boolean {
    this.#assertOpen();
    if (!this.#history.publish(channel, text)) return false;
    this.#log.push({ id: HISTORY_LOG_ID, pk: '', prev: undefined });
    return true;
  }

  resetHistory(channel: string): void {
    this.#assertOpen();
    this.#history.reset(channel);
    this.#log.push({ id: HISTORY_LOG_ID, pk: '', prev: undefined });
  }

  /** At commit: a trim sweep over every channel (SharedStore.trimHistory). */
  requestSweep(request: SweepRequest): void {
    this.#assertOpen();
    this.#history.requestSweep(request);
  }

  history(channel: string, query?: HistoryQuery): HistoryPage | null {
    this.#assertOpen();
    return this.#history.read(channel, this.snapshot, query);
  }

  channelPosition(channel: string): ChannelPosition | null {
    this.#assertOpen();
    return this.#history.position(channel, this.snapshot);
  }

  /**
   * What this transaction read since the previous call (read-set.ts `deps`), recording afresh
   * from now: one live query's dependencies. Only for transactions that never commit (a refresh):
   * validation would miss the reads taken away.
   */
  takeReads(): WrittenKeys {
    const deps = this.#reads.deps();
    this.#reads = new ReadSet(this.#engine.stamps.seed);
    return deps;
  }

  /** What changed between an older commit and this snapshot (since.ts; a live-query refresh). */
  changesSince(): ChangesSince {
    return new ChangesSince(this.#engine, this.snapshot, (id) => this.#index(id));
  }

  abort(): void {
    if (this.#done) return;
    this.#finish();
  }

  #finish(): void {
    this.#done = true;
    this.#engine.closeSnapshot(this.snapshot);
    if (this.exclusive) this.#engine.unlock(this);
    this.#engine.leaveReader();
  }

  // -- commit ------------------------------------------------------------------------------------

  /**
   * Cluster mode: this transaction's commit as a record for the commit stream, instead of a local
   * commit (cluster-record.ts); ends the transaction. Null when it wrote and published nothing.
   */
  exportCommit(): CommitRecord | null {
    this.#assertOpen();
    try {
      const plan = commitPlan(this.#writes);
      if (plan.length === 0 && this.#history.ops.length === 0) return null;
      if (this.#history.sweep) throw new LexiconsError(ErrorCode.TXN, 'cluster mode: a history trim sweep cannot be sent to the commit stream');
      return recordOf(this.#engine, plan, this.#history.ops, this.#reads, this.snapshot);
    } finally {
      this.#finish();
    }
  }

  /**
   * Commits, or returns why not. With `rebase` (a worker job that marks a step per unit) a
   * conflict may leave the transaction OPEN: when the first step whose reads or writes were
   * overwritten is `step` > 0, the steps before it are kept, everything from `step` on is rolled
   * back, the snapshot moves to the latest commit, and the result is `conflict` with `step`: the
   * caller re-runs its steps from `step` and commits again (or aborts). Why that stays
   * serializable: commit-protocol.ts, "Rebase".
   */
  commit(options?: { rebase?: boolean }): CommitResult {
    this.#assertOpen();
    const plan = commitPlan(this.#writes);
    const history = this.#history.ops.length > 0 || this.#history.sweep !== undefined;
    if (plan.length === 0 && !history) {
      this.#finish();
      return { ok: true, commitId: this.snapshot, changes: { commitId: this.snapshot, tables: {} }, publications: [] };
    }
    const engine = this.#engine;
    if (engine.remoteOnly) {
      this.abort();
      throw new LexiconsError(ErrorCode.TXN, 'cluster mode: a worker commits through the commit stream only (this commit path is not supported in cluster mode)');
    }
    if (!this.exclusive && !engine.lock(this)) {
      return { ok: false, reason: 'conflict', message: 'the commit lock is held by another transaction of this thread' };
    }
    let rebase: { step: number; latest: number } | undefined;
    try {
      engine.repairIfDirty();
      const result = validateCommit(engine, plan, this.snapshot, this.exclusive, this.#reads);
      if (result) {
        if (result.ok || result.reason !== 'conflict' || options?.rebase !== true || this.#steps.length < 2 || this.#history.sweep !== undefined) return result;
        const step = firstConflictStep(engine, plan, this.snapshot, this.#reads, (id, pk) => this.#writeStep(id, pk));
        if (step === 0) return result;
        rebase = { step, latest: engine.control.commitId() };
        return { ...result, step };
      }
      let full = plan;
      if (history) {
        const sequenced = this.#history.sequence(plan, this.historyClock);
        this.historyOutcome = sequenced.outcome;
        full = [...plan, ...sequenced.plans];
      }
      const publications = this.historyOutcome?.publications ?? [];
      if (full.length === 0) {
        const latest = engine.control.commitId();
        return { ok: true, commitId: latest, changes: { commitId: latest, tables: {} }, publications };
      }
      return { ...publishCommit(engine, full), publications };
    } finally {
      if (!this.exclusive) engine.unlock(this);
      if (rebase) this.#rebase(rebase.step, rebase.latest);
      else this.#finish();
    }
  }
}
