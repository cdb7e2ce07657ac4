/**
 * @module storage/write-set
 * What a transaction has written and not yet committed, per table: pk -> the new values (or null
 * for a deletion) and the committed version it replaces. The committed versions it replaces are
 * "shadowed" (reads skip them), and a value index per unique field makes the unique check against
 * the transaction's own writes O(1). The transaction keeps an undo log of {@link put}s on top for
 * savepoints (transaction.ts).
 */
import type { Row } from './query.js';
import type { TableSchema } from './schema.js';

/** One buffered write. */
export interface Pending {
  /** The full new values, or null for a deletion. */
  row: Row | null;
  /** The committed version visible at the snapshot that this write replaces, or -1. */
  base: number;
}

/** The buffered writes of one table. */
export interface TableWrites {
  rows: Map<string, Pending>;
  /** Committed version slots replaced or deleted by these writes (reads skip them). */
  shadowed: Set<number>;
  /** Per unique field index: value -> pks of pending rows holding it (O(1) unique checks). */
  unique: Map<number, Map<unknown, Set<string>>>;
}

/** The writes of one table that change anything, as the commit protocol takes them. */
export interface TablePlan {
  readonly id: number;
  readonly entries: Array<[string, Pending]>;
  /** Every pending row of the table (a unique value may move between two of them). */
  readonly rows: ReadonlyMap<string, Pending>;
}

export function emptyTableWrites(t: TableSchema): TableWrites {
  const unique = new Map<number, Map<unknown, Set<string>>>();
  t.fields.forEach((f, k) => f.unique && unique.set(k, new Map()));
  return { rows: new Map(), shadowed: new Set(), unique };
}

/** Adds (`add`) or removes the unique values of `row` (held by `pk`) in the value index. */
export function track(w: TableWrites, t: TableSchema, pk: string, row: Row | null, add: boolean): void {
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

/** The rows a table's writes create or update (not deletions), newest values. */
export function* pendingRows(w: TableWrites): Iterable<Row> {
  for (const p of w.rows.values()) if (p.row !== null) yield p.row;
}

/** The tables whose writes change anything (a create deleted again in the same transaction does not). */
export function commitPlan(writes: ReadonlyMap<number, TableWrites>): TablePlan[] {
  const plan: TablePlan[] = [];
  for (const [id, w] of writes) {
    const entries = [...w.rows].filter(([, p]) => p.row !== null || p.base >= 0);
    if (entries.length > 0) plan.push({ id, entries, rows: w.rows });
  }
  return plan;
}
