/**
 * @module storage/transaction-db
 * The `db` a transaction hands to user code (signals, tasks, headers): the {@link Db} API of
 * api.ts over one {@link Transaction}. Every call is synchronous, reads the transaction's own
 * writes, and buffers its writes in the transaction until commit.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { AnyRecord, Db, Filters, Target } from './api.js';
import { parseFilters } from './filters.js';
import { queryJson, type JsonRows } from './json-rows.js';
import { countMatching, select, type Row } from './query.js';
import { makeRecord, recordFrom } from './record.js';
import { coerceValue, isSystemTableName, withoutTransform, type ModelClass, type Schema, type TableSchema } from './schema.js';
import type { Transaction } from './transaction.js';

type Rec = AnyRecord;

function isFilters(target: Target): target is Filters {
  return typeof target === 'object' && target !== null && !Array.isArray(target) && typeof (target as { toDict?: unknown }).toDict !== 'function';
}

function checkKeys(t: TableSchema, values: Record<string, unknown>): void {
  for (const key of Object.keys(values)) {
    if (key !== 'pk' && !t.byName.has(key)) throw new LexiconsError(ErrorCode.NOT_FOUND, `${t.name}: unknown field ${key}`);
  }
}

/** The id of a table user code may write: the system tables (lexicons_*) are read-only here. */
function writableTable(txn: Transaction, table: ModelClass | string): number {
  const id = txn.tableId(table);
  const name = txn.tableSchema(id).name;
  if (isSystemTableName(name)) throw new LexiconsError(ErrorCode.SCHEMA, `${name} is a system table: it is written by publications (history), not by db calls`);
  return id;
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
export class TxnDb implements Db {
  readonly schema: Schema;
  readonly #txn: Transaction;

  constructor(txn: Transaction, schema: Schema) {
    this.#txn = txn;
    this.schema = schema;
  }

  create(table: ModelClass | string, values: Record<string, unknown> = {}): any {
    const txn = this.#txn;
    return recordFrom(insertRow(txn, writableTable(txn, table), values, true));
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

  queryJson(table: ModelClass | string, filters?: Filters): JsonRows {
    const txn = this.#txn;
    const id = txn.tableId(table);
    return queryJson(txn.context(id), parseFilters(txn.tableSchema(id), filters));
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
    const id = writableTable(txn, table);
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
    if (isFilters(target)) {
      for (const current of this.#resolve(id, target)) out.push(this.#updateRow(id, t, { ...current }, -2, changes));
      return out;
    }
    // By pk or record: one pk lookup per row gives both the current values (a fresh copy, changed
    // in place) and the version the write replaces (no second lookup in put).
    const items = Array.isArray(target) ? target : [target];
    const seen = new Set<string>();
    for (const item of items as Array<string | { pk: string }>) {
      const pk = typeof item === 'string' ? item : item?.pk;
      if (typeof pk !== 'string') throw new LexiconsError(ErrorCode.TYPE, `${t.name}: a target must be a pk, a record, an array of them, or filters`);
      if (seen.has(pk)) continue;
      seen.add(pk);
      const current = txn.readForWrite(id, pk);
      if (current !== null) out.push(this.#updateRow(id, t, current.row, current.base, changes));
    }
    return out;
  }

  /** Applies `changes` to `row` (a copy the caller owns) and buffers it; `base` -2: unknown (looked up). */
  #updateRow(id: number, t: TableSchema, row: Row, base: number, changes: ReadonlyArray<[number, unknown]>): Rec {
    const txn = this.#txn;
    for (const [k, value] of changes) {
      const f = t.fields[k]!;
      if (f.unique && value !== row[f.name]) txn.checkUnique(id, k, value, row.pk);
      row[f.name] = Array.isArray(value) ? [...value] : value;
    }
    txn.put(id, row.pk, row, base === -2 ? undefined : base);
    return recordFrom(row);
  }

  drop(table: ModelClass | string, target: Target, options?: { cascade?: string[] }): number {
    const txn = this.#txn;
    const id = writableTable(txn, table);
    const cascade = (options?.cascade ?? []).map((spec) => {
      const dot = spec.lastIndexOf('.');
      const tid = writableTable(txn, dot < 0 ? '' : spec.slice(0, dot));
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
