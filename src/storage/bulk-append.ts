/**
 * @module storage/bulk-append
 * Loading rows into a table that is empty, without transactions: what a CSV load at start does
 * with a million rows. `bulkLoad` buffers every row in a write set (a Map entry per row), copies it
 * into the commit's change set, and checks pks and unique values through the per-thread indexes;
 * here each batch of rows is checked against plain Sets kept for the whole load and written
 * straight into the table's slots, one commit per batch (`SharedStore.appendColumns`). The checks
 * and their messages are bulkLoad's: values through `coerceValue` (no transforms: saved data is
 * already transformed), a repeated pk or unique value is a UNIQUE error.
 *
 * Measured on 200,000 ChatMessage rows (bench machine, loaded): the store side of a CSV load went
 * from ~60% of its time (garbage collection of the write sets included) to ~15%.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import { i32RowCount, i64LastWrite, kCommitId } from './layout.js';
import { coerceValue, withoutTransform, type FieldSchema, type ModelClass, type TableSchema } from './schema.js';
import type { SharedStore } from './store.js';
import type { SharedTable } from './table.js';
import type { Engine } from './engine.js';
import type { Transaction } from './transaction.js';
import { insertRow } from './transaction-db.js';

/** `SharedStore.bulkLoad`: the rows inserted by `txn` (exclusive) and committed; any error aborts it. */
export function insertAndCommit(txn: Transaction, table: ModelClass | string, rows: Iterable<Record<string, unknown>>): number {
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

/**
 * `SharedStore.appendColumns`: under the commit lock, `fill` writes rows straight into table `id`'s
 * column buffers at its unpublished slots from `start` and returns how many (0 publishes nothing);
 * they are published as one commit (their `begin`, `next` and `flags` set). No constraint is
 * checked and nothing is logged: for start-up loads only (binary snapshot files, verified by their
 * checksum; CSV rows into an empty table, checked by {@link BulkAppender}).
 */
export function appendColumns(engine: Engine, id: number, fill: (t: SharedTable, start: number) => number): number {
  const t = engine.tables[id]!;
  const owner = {};
  if (!engine.lock(owner)) throw new LexiconsError(ErrorCode.TXN, 'appendColumns: a transaction of this thread holds the commit lock');
  try {
    engine.repairIfDirty();
    const start = t.rowCount();
    const n = fill(t, start);
    if (n === 0) return 0;
    const c = engine.control;
    const commitId = c.commitId() + 1;
    t.beginBuf.ensure((start + n) * 8);
    t.nextBuf.ensure((start + n) * 4);
    t.flagsBuf.ensure(start + n);
    t.setBegin(start, start + n, commitId);
    t.nextBuf.i32(start + n - 1).fill(-1, start, start + n);
    t.flagsBuf.u8(start + n - 1).fill(0, start, start + n);
    Atomics.store(c.i32, i32RowCount(id), start + n);
    // The rows' keys are not stamped one by one (read-set.ts): every stamp moves to this commit, so
    // a transaction that read any key of the table before it conflicts (a 2 MiB fill per batch).
    engine.stamps.stampAll(commitId);
    Atomics.store(c.i64, i64LastWrite(id), BigInt(commitId));
    Atomics.store(c.i64, kCommitId, BigInt(commitId));
    return n;
  } finally {
    engine.unlock(owner);
  }
}

export class BulkAppender {
  readonly #store: SharedStore;
  readonly #table: TableSchema;
  readonly #fields: readonly FieldSchema[];
  readonly #pks = new Set<string>();
  readonly #unique: ReadonlyArray<Set<unknown> | null>;

  /** Returns null when the table is not empty (bulkLoad's checks against its rows are then needed). */
  static forEmpty(store: SharedStore, table: TableSchema): BulkAppender | null {
    return store.stats().tables[table.name]?.versions === 0 ? new BulkAppender(store, table) : null;
  }

  private constructor(store: SharedStore, table: TableSchema) {
    this.#store = store;
    this.#table = table;
    this.#fields = table.fields.map(withoutTransform);
    this.#unique = table.fields.map((f) => (f.unique ? new Set() : null));
  }

  /**
   * Checks the rows (`pk` + every field; a missing field gets its default) and appends them as one
   * commit. Each row is written into its slot as soon as it is checked: a failing row throws before
   * the commit publishes anything (the Sets then hold values of unpublished rows: the load fails).
   */
  append(rows: ReadonlyArray<Record<string, unknown>>): number {
    const t = this.#table;
    const fields = this.#fields;
    const unique = this.#unique;
    const pks = this.#pks;
    return this.#store.appendColumns(t.name, (table, start) => {
      const row: Record<string, unknown> = {};
      for (let i = 0; i < rows.length; i++) {
        const values = rows[i]!;
        const pk = values.pk;
        if (typeof pk !== 'string' || pk.length === 0) throw new LexiconsError(ErrorCode.TYPE, `${t.name}.pk: expected a non-empty string, got ${typeof pk}`);
        if (pks.has(pk)) throw new LexiconsError(ErrorCode.UNIQUE, `${t.name}: a row with pk ${pk} already exists`);
        pks.add(pk);
        for (let k = 0; k < fields.length; k++) {
          const f = fields[k]!;
          const given = values[f.name];
          const value = coerceValue(t.name, f, given === undefined ? f.makeDefault() : given);
          const set = unique[k];
          if (set && value !== null) {
            if (set.has(value)) throw new LexiconsError(ErrorCode.UNIQUE, `${t.name}.${f.name}: value ${JSON.stringify(value)} already exists (unique field)`);
            set.add(value);
          }
          row[f.name] = value;
        }
        table.writeVersion(start + i, pk, row);
      }
      return rows.length;
    });
  }
}
