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
 * appends a new version and points the old one's `next` at it; a delete appends a tombstone. A
 * version v is visible at snapshot S iff `begin[v] <= S` and (`next[v] === -1` or
 * `begin[next[v]] > S`) and v is not a tombstone. Published slot data is never modified, so a
 * reader cannot observe a torn Float64/BigInt64 or a half-rewritten string; the one word mutated
 * after publication is the Int32 `next`, always accessed with Atomics.
 *
 * Publish order. Under the commit lock, a committer with new commit id C = latest + 1:
 *   1. sets pending = C and dirty = 1 (so a successor can undo it if this thread dies),
 *   2. writes the new versions' data into slots >= the row count (growing buffers first: growth
 *      never moves published bytes; every thread sees the new byte length),
 *   3. writes `begin` of each new slot,
 *   4. Atomics.store of each table's row count,
 *   5. Atomics.store of `next` of each superseded version,
 *   6. Atomics.store of each written table's last-write commit id,
 *   7. Atomics.store of the global commit id = C   <- the single publish point,
 *   8. dirty = 0, then releases the lock.
 * A reader loads S = global commit id FIRST, then row counts, and looks only at slots below the row
 * count, filtered by visibility. Atomics are sequentially consistent, so every plain write made
 * before a store (steps 2-3) is visible to a thread that loaded that store's value. Any slot or
 * `next` link of a commit newer than S is filtered out by `begin`, so a reader sees either all of a
 * commit or none of it, without ever taking a lock.
 *
 * Optimistic concurrency. A transaction reads at its snapshot S, buffers its writes locally (per
 * table: pk -> new values or tombstone; a write log gives savepoints) and records the tables it read
 * (table-level read set). Commit takes the lock; if any table it read has last-write > S, some
 * transaction serialized after S changed what it read: it fails with `conflict` and the runner
 * re-runs the function at a fresh snapshot. Otherwise its reads are still current, so executing it
 * at C is equivalent to executing it alone after the previous commit: serializable. Blind creates
 * do not add the table to the read set (chat messages do not conflict with each other); instead pk
 * existence and unique constraints are re-checked at commit against the latest state, under the
 * lock, with the indexes caught up. After `optimisticAttempts` conflicts the runner runs the function
 * under `begin({ exclusive: true })`, which takes the lock before reading: it cannot conflict, so
 * progress is guaranteed even under heavy contention.
 *
 * Dead writers. A worker can be terminated between steps 1 and 8. Its commit id was never
 * published, so no reader ever saw any of its slots. The lock is freed by the main thread
 * (`releaseIfHeldBy`); the next lock holder sees dirty = 1 and repairs (store.ts): truncates row
 * counts past slots whose begin == pending, resets `next` links into truncated slots, bumps the
 * repair epoch so threads rebuild their derived indexes.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { AnyRecord, ChangeSet, CommitResult, Db, Filters, Target, Txn } from './api.js';
import { coerceValue, tableNameOf, withoutTransform, type ModelClass, type Schema, type TableSchema } from './schema.js';
import type { ControlBlock } from './layout.js';
import { i32DeadVersions, i32RowCount, i64LastWrite, kCommitId, kDirty, kPendingCommit } from './layout.js';
import type { SharedTable } from './table.js';
import type { TableIndex } from './indexes.js';
import { copyRow, countMatching, parseFilters, select, type ReadContext, type Row } from './query.js';
import { makeRecord, recordFrom } from './record.js';

/** What a transaction needs from the store (implemented in store.ts). */
export interface Engine {
  readonly schema: Schema;
  readonly control: ControlBlock;
  readonly tables: readonly SharedTable[];
  readonly tableIds: ReadonlyMap<string, number>;
  index(id: number): TableIndex;
  /** Takes the commit lock for `owner`; false if another transaction of this thread holds it. */
  lock(owner: object): boolean;
  unlock(owner: object): void;
  /** Under the lock: undoes a dead writer's unpublished commit, if any. */
  repairIfDirty(): void;
  openSnapshot(s: number): void;
  closeSnapshot(s: number): void;
  /** Called under the lock before any shared write of a commit (e.g. a WAL append); a throw aborts. */
  beforePublish: ((changes: ChangeSet) => void) | undefined;
  /** Called under the lock right after the commit is published. */
  afterPublish: ((changes: ChangeSet) => void) | undefined;
}

/** Test-only hooks to simulate a writer dying mid-commit (never set in production). */
export const testHooks: { afterHalfSlots?: () => void; beforeGlobalPublish?: () => void } = {};

interface Pending {
  row: Row | null;
  /** The committed version visible at the snapshot that this write replaces, or -1. */
  base: number;
}

interface TableWrites {
  rows: Map<string, Pending>;
  shadowed: Set<number>;
  /** Per unique field index: value -> pks of pending rows holding it (O(1) unique checks). */
  unique: Map<number, Map<unknown, Set<string>>>;
}

function track(w: TableWrites, t: TableSchema, pk: string, row: Row | null, add: boolean): void {
  if (row === null) return;
  for (const [k, map] of w.unique) {
    const value = row[t.fields[k]!.name];
    if (value === null || value === undefined) continue;
    let set = map.get(value);
    if (add) {
      if (!set) map.set(value, (set = new Set()));
      set.add(pk);
    } else if (set) {
      set.delete(pk);
      if (set.size === 0) map.delete(value);
    }
  }
}

const EMPTY_SET: ReadonlySet<number> = new Set();

export class Transaction implements Txn {
  readonly db: Db;
  readonly snapshot: number;
  readonly exclusive: boolean;
  readonly #engine: Engine;
  readonly #writes = new Map<number, TableWrites>();
  readonly #log: Array<{ id: number; pk: string; prev: Pending | undefined }> = [];
  readonly #readSet = new Set<number>();
  readonly #synced = new Set<number>();
  #done = false;

  constructor(engine: Engine, exclusive: boolean) {
    this.#engine = engine;
    this.exclusive = exclusive;
    if (exclusive) {
      if (!engine.lock(this)) throw new LexiconsError(ErrorCode.TXN, 'cannot begin an exclusive transaction: another transaction of this thread holds the commit lock');
      try {
        engine.repairIfDirty();
      } catch (err) {
        engine.unlock(this);
        throw err;
      }
    }
    this.snapshot = engine.control.commitId();
    engine.openSnapshot(this.snapshot);
    this.db = new TxnDb(this, engine.schema);
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

  /** A read context for table `id`; records the table in the read set. */
  context(id: number): ReadContext {
    this.#readSet.add(id);
    const w = this.#writes.get(id);
    return {
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

  /** Current row of `pk` as a fresh object the caller may keep; records a read. */
  readRow(id: number, pk: string): Row | null {
    this.#readSet.add(id);
    const p = this.#writes.get(id)?.rows.get(pk);
    if (p) return p.row === null ? null : copyRow(p.row);
    const v = this.#index(id).lookupPk(pk, this.snapshot);
    return v < 0 ? null : this.#engine.tables[id]!.readRow(v);
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

  /** Buffers a write (row = full new values, null = delete). */
  put(id: number, pk: string, row: Row | null): void {
    this.#assertOpen();
    const t = this.tableSchema(id);
    let w = this.#writes.get(id);
    if (!w) {
      const unique = new Map<number, Map<unknown, Set<string>>>();
      t.fields.forEach((f, k) => f.unique && unique.set(k, new Map()));
      this.#writes.set(id, (w = { rows: new Map(), shadowed: new Set(), unique }));
    }
    const prev = w.rows.get(pk);
    const base = prev ? prev.base : this.#index(id).lookupPk(pk, this.snapshot);
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

  rollbackTo(savepoint: number): void {
    this.#assertOpen();
    if (!Number.isInteger(savepoint) || savepoint < 0 || savepoint > this.#log.length) {
      throw new LexiconsError(ErrorCode.TXN, `invalid savepoint ${savepoint}`);
    }
    while (this.#log.length > savepoint) {
      const e = this.#log.pop()!;
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

  abort(): void {
    if (this.#done) return;
    this.#finish();
  }

  #finish(): void {
    this.#done = true;
    this.#engine.closeSnapshot(this.snapshot);
    if (this.exclusive) this.#engine.unlock(this);
  }

  // -- commit ------------------------------------------------------------------------------------

  commit(): CommitResult {
    this.#assertOpen();
    const plan: Array<{ id: number; entries: Array<[string, Pending]> }> = [];
    for (const [id, w] of this.#writes) {
      const entries = [...w.rows].filter(([, p]) => p.row !== null || p.base >= 0);
      if (entries.length > 0) plan.push({ id, entries });
    }
    if (plan.length === 0) {
      this.#finish();
      return { ok: true, commitId: this.snapshot, changes: { commitId: this.snapshot, tables: {} } };
    }
    const engine = this.#engine;
    if (!this.exclusive && !engine.lock(this)) {
      return { ok: false, reason: 'conflict', message: 'the commit lock is held by another transaction of this thread' };
    }
    try {
      engine.repairIfDirty();
      const result = this.#validate(plan);
      if (result) return result;
      return this.#publish(plan);
    } finally {
      if (!this.exclusive) engine.unlock(this);
      this.#finish();
    }
  }

  /** Under the lock: serializability, pk existence and unique checks against the latest state. */
  #validate(plan: Array<{ id: number; entries: Array<[string, Pending]> }>): CommitResult | undefined {
    const engine = this.#engine;
    const latest = engine.control.commitId();
    if (!this.exclusive) {
      for (const id of this.#readSet) {
        if (engine.control.lastWrite(id) > this.snapshot) {
          return { ok: false, reason: 'conflict', message: `${engine.tables[id]!.schema.name} changed since snapshot ${this.snapshot}` };
        }
      }
    }
    for (const { id, entries } of plan) {
      const t = engine.tables[id]!;
      const index = engine.index(id);
      index.sync();
      const mine = this.#writes.get(id)!.rows;
      const seen = t.schema.fields.map(() => new Map<unknown, string>());
      for (const [pk, p] of entries) {
        const now = index.lookupPk(pk, latest);
        if (now !== p.base) {
          if (p.base === -1) return { ok: false, reason: 'unique', message: `${t.schema.name}: a row with pk ${pk} already exists` };
          return { ok: false, reason: 'conflict', message: `${t.schema.name} row ${pk} changed since snapshot ${this.snapshot}` };
        }
        if (p.row === null) continue;
        for (let k = 0; k < t.schema.fields.length; k++) {
          const f = t.schema.fields[k]!;
          const value = p.row[f.name];
          if (!f.unique || value === null) continue;
          const clash = (): CommitResult => ({ ok: false, reason: 'unique', message: `${t.schema.name}.${f.name}: value ${JSON.stringify(value)} already exists (unique field)` });
          if (seen[k]!.has(value)) return clash();
          seen[k]!.set(value, pk);
          for (const v of index.lookupField(k, value, latest)) {
            const other = t.readPk(v);
            if (other !== pk && !mine.has(other)) return clash();
          }
        }
      }
    }
    return undefined;
  }

  /** Under the lock: the publish protocol (see the module comment). */
  #publish(plan: Array<{ id: number; entries: Array<[string, Pending]> }>): CommitResult {
    const engine = this.#engine;
    const control = engine.control;
    const commitId = control.commitId() + 1;
    const changes: ChangeSet = { commitId, tables: {} };
    for (const { id, entries } of plan) {
      const tc = { upserts: [] as Array<Record<string, unknown>>, deletes: [] as string[] };
      for (const [pk, p] of entries) {
        if (p.row === null) tc.deletes.push(pk);
        else tc.upserts.push({ ...p.row });
      }
      changes.tables[engine.tables[id]!.schema.name] = tc;
    }
    Atomics.store(control.i64, kPendingCommit, BigInt(commitId));
    Atomics.store(control.i32, kDirty, 1);
    const starts: number[] = [];
    try {
      engine.beforePublish?.(changes);
      const total = plan.reduce((n, p) => n + p.entries.length, 0);
      let written = 0;
      for (const { id, entries } of plan) {
        const t = engine.tables[id]!;
        const start = t.rowCount();
        starts.push(start);
        for (let i = 0; i < entries.length; i++) {
          const [pk, p] = entries[i]!;
          t.writeVersion(start + i, pk, p.row);
          if (++written === Math.ceil(total / 2)) testHooks.afterHalfSlots?.();
        }
      }
      plan.forEach(({ id, entries }, j) => engine.tables[id]!.setBegin(starts[j]!, starts[j]! + entries.length, commitId));
    } catch (err) {
      // Nothing is published yet (no row count moved): clearing the dirty flag is enough.
      Atomics.store(control.i32, kDirty, 0);
      throw err;
    }
    plan.forEach(({ id, entries }, j) => Atomics.store(control.i32, i32RowCount(id), starts[j]! + entries.length));
    plan.forEach(({ id, entries }, j) => {
      const t = engine.tables[id]!;
      let dead = 0;
      entries.forEach(([, p], i) => {
        if (p.row === null) dead++; // the tombstone itself
        if (p.base >= 0) {
          t.setNext(p.base, starts[j]! + i);
          dead++;
        }
      });
      if (dead > 0) Atomics.add(control.i32, i32DeadVersions(id), dead);
      Atomics.store(control.i64, i64LastWrite(id), BigInt(commitId));
    });
    testHooks.beforeGlobalPublish?.();
    Atomics.store(control.i64, kCommitId, BigInt(commitId)); // <- publish point
    Atomics.store(control.i32, kDirty, 0);
    engine.afterPublish?.(changes);
    return { ok: true, commitId, changes };
  }
}

function* pendingRows(w: TableWrites): Iterable<Row> {
  for (const p of w.rows.values()) if (p.row !== null) yield p.row;
}

// -- the Db handle ---------------------------------------------------------------------------------

type Rec = AnyRecord;

function isFilters(target: Target): target is Filters {
  return typeof target === 'object' && target !== null && !Array.isArray(target) && typeof (target as { toDict?: unknown }).toDict !== 'function';
}

function checkKeys(t: TableSchema, values: Record<string, unknown>): void {
  for (const key of Object.keys(values)) {
    if (key !== 'pk' && !t.byName.has(key)) throw new LexiconsError(ErrorCode.NOT_FOUND, `${t.name}: unknown field ${key}`);
  }
}

/**
 * Validates and buffers a new row: defaults for missing fields, pk generated (uuid4) if missing,
 * values checked with coerceValue (transforms applied when `transform`; bulk loads of saved data
 * skip them), pk and unique checks at the snapshot including own writes.
 */
export function insertRow(txn: Transaction, id: number, values: Record<string, unknown>, transform: boolean): Row {
  const t = txn.tableSchema(id);
  checkKeys(t, values);
  const pk = values.pk ?? randomUUID();
  if (typeof pk !== 'string' || pk.length === 0) throw new LexiconsError(ErrorCode.TYPE, `${t.name}.pk: expected a non-empty string, got ${typeof pk}`);
  const row: Row = { pk };
  for (const f of t.fields) {
    const given = values[f.name];
    row[f.name] = given === undefined ? coerceValue(t.name, withoutTransform(f), f.makeDefault()) : coerceValue(t.name, transform ? f : withoutTransform(f), given);
  }
  if (txn.currentRow(id, pk) !== null) throw new LexiconsError(ErrorCode.UNIQUE, `${t.name}: a row with pk ${pk} already exists`);
  t.fields.forEach((f, k) => {
    if (f.unique) txn.checkUnique(id, k, row[f.name], pk);
  });
  txn.put(id, pk, row);
  return row;
}

/** The `db` of a transaction: every call is synchronous and reads its own writes. */
class TxnDb implements Db {
  readonly schema: Schema;
  readonly #txn: Transaction;

  constructor(txn: Transaction, schema: Schema) {
    this.#txn = txn;
    this.schema = schema;
  }

  create(table: ModelClass | string, values: Record<string, unknown> = {}): any {
    const txn = this.#txn;
    return recordFrom(insertRow(txn, txn.tableId(table), values, true));
  }

  get(table: ModelClass | string, pkOrFilters: string | Filters): any {
    const txn = this.#txn;
    const id = txn.tableId(table);
    if (typeof pkOrFilters === 'string') {
      const row = txn.readRow(id, pkOrFilters);
      return row === null ? null : makeRecord(row);
    }
    const rows = select(txn.context(id), parseFilters(txn.tableSchema(id), pkOrFilters));
    if (rows.length > 1) throw new LexiconsError(ErrorCode.MULTIPLE, `${rows.length} ${txn.tableSchema(id).name} models found.`);
    return rows.length === 0 ? null : makeRecord(rows[0]!);
  }

  query(table: ModelClass | string, filters?: Filters): any[] {
    const txn = this.#txn;
    const id = txn.tableId(table);
    return select(txn.context(id), parseFilters(txn.tableSchema(id), filters)).map(makeRecord);
  }

  filter(table: ModelClass | string, filters?: Filters): any[] {
    return this.query(table, filters);
  }

  count(table: ModelClass | string, filters?: Filters): number {
    const txn = this.#txn;
    const id = txn.tableId(table);
    return countMatching(txn.context(id), parseFilters(txn.tableSchema(id), filters));
  }

  /** Current rows named by a target (pk, record, array of either, or filters). */
  #resolve(id: number, target: Target): Row[] {
    const txn = this.#txn;
    if (isFilters(target)) return select(txn.context(id), parseFilters(txn.tableSchema(id), target));
    const items = Array.isArray(target) ? target : [target];
    const out: Row[] = [];
    const seen = new Set<string>();
    for (const item of items as Array<string | { pk: string }>) {
      const pk = typeof item === 'string' ? item : item?.pk;
      if (typeof pk !== 'string') throw new LexiconsError(ErrorCode.TYPE, `${txn.tableSchema(id).name}: a target must be a pk, a record, an array of them, or filters`);
      if (seen.has(pk)) continue;
      seen.add(pk);
      const row = txn.readRow(id, pk);
      if (row !== null) out.push(row);
    }
    return out;
  }

  update(table: ModelClass | string, target: Target, values: Record<string, unknown>): any[] {
    const txn = this.#txn;
    const id = txn.tableId(table);
    const t = txn.tableSchema(id);
    checkKeys(t, values);
    const changes: Array<[number, unknown]> = [];
    for (const [key, raw] of Object.entries(values)) {
      if (raw === undefined) continue;
      if (key === 'pk') throw new LexiconsError(ErrorCode.TYPE, `${t.name}.pk: the pk of a row cannot be updated`);
      const k = t.fields.findIndex((f) => f.name === key);
      changes.push([k, coerceValue(t.name, t.fields[k]!, raw)]);
    }
    const out: Rec[] = [];
    for (const current of this.#resolve(id, target)) {
      const row: Row = { ...current };
      for (const [k, value] of changes) {
        const f = t.fields[k]!;
        row[f.name] = Array.isArray(value) ? [...value] : value;
        if (f.unique && value !== current[f.name]) txn.checkUnique(id, k, value, row.pk);
      }
      txn.put(id, row.pk, row);
      out.push(recordFrom(row));
    }
    return out;
  }

  drop(table: ModelClass | string, target: Target, options?: { cascade?: string[] }): number {
    const txn = this.#txn;
    const id = txn.tableId(table);
    const cascade = (options?.cascade ?? []).map((spec) => {
      const dot = spec.lastIndexOf('.');
      const tid = txn.tableId(dot < 0 ? '' : spec.slice(0, dot));
      const ts = txn.tableSchema(tid);
      const name = spec.slice(dot + 1);
      const f = ts.byName.get(name);
      if (!f) throw new LexiconsError(ErrorCode.NOT_FOUND, `${ts.name}: unknown field ${name} (cascade ${spec})`);
      if (f.kind !== 'ref') throw new LexiconsError(ErrorCode.TYPE, `cascade ${spec}: ${ts.name}.${name} is not a reference field`);
      return { tid, name, target: f.ref! };
    });
    let count = 0;
    const remove = (tid: number, rows: Row[]): void => {
      const pks: string[] = [];
      for (const row of rows) {
        if (txn.currentRow(tid, row.pk) === null) continue; // already deleted (cascade cycles)
        txn.put(tid, row.pk, null);
        pks.push(row.pk);
        count++;
      }
      if (pks.length === 0) return;
      const name = txn.tableSchema(tid).name;
      for (const c of cascade) {
        if (c.target !== name) continue;
        remove(c.tid, select(txn.context(c.tid), parseFilters(txn.tableSchema(c.tid), { [`${c.name}__in`]: pks })));
      }
    };
    remove(id, this.#resolve(id, target));
    return count;
  }

  delete(table: ModelClass | string, target: Target, options?: { cascade?: string[] }): number {
    return this.drop(table, target, options);
  }

  getOrCreate(table: ModelClass | string, filters: Filters, defaults?: Record<string, unknown>): any {
    const found = this.get(table, filters);
    if (found !== null) return [found, false];
    const values: Record<string, unknown> = { ...defaults };
    for (const [key, value] of Object.entries(filters)) {
      if (key.startsWith('_')) continue;
      if (!key.includes('__')) values[key] = value;
      else if (key.endsWith('__eq') && key.split('__').length === 2) values[key.slice(0, -4)] = value;
    }
    return [this.create(table, values), true];
  }

  hydrate(table: ModelClass | string, record: { pk: string }, depth = 1): Record<string, unknown> {
    const txn = this.#txn;
    const t = txn.tableSchema(txn.tableId(table));
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(record)) out[key] = Array.isArray(value) ? [...value] : value;
    if (depth <= 0) return out;
    for (const f of t.fields) {
      const pk = out[f.name];
      if (f.kind !== 'ref' || typeof pk !== 'string') continue;
      const target = this.get(f.ref!, pk) as Rec | null;
      out[f.name] = target === null ? null : depth > 1 ? this.hydrate(f.ref!, target, depth - 1) : target.toDict();
    }
    return out;
  }
}
