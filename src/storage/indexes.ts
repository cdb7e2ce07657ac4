/**
 * @module storage/indexes
 * Per-thread indexes derived from the shared, append-only version slots.
 *
 * Nothing here is shared: each thread keeps, per table,
 * - `pk`: pk -> newest version slot it has seen (including tombstones),
 * - `prev`: a thread-local Int32 array, prev[slot] = the previous version slot of the same pk (-1
 *   for the first). The newest slot may be too new for an older snapshot; walking `prev` finds the
 *   version visible at any snapshot in O(versions newer than the snapshot), usually 0 or 1 steps.
 * - for every indexed/unique field: value -> version slots holding that value. Entries of
 *   superseded versions stay until they are invisible to every open transaction of this thread
 *   (the "horizon"), then they are pruned when the list doubles.
 * They are caught up incrementally by scanning slots [seen, rowCount) when a transaction first
 * touches the table (and at commit, under the lock). A dead-writer repair bumps the repair epoch;
 * a thread that sees a new epoch (or a row count below what it has seen) rebuilds from scratch,
 * because the slots it indexed past the repaired row count will be reused by other rows.
 */
import type { SharedTable } from './table.js';
import { TOMBSTONE } from './table.js';

export class TableIndex {
  readonly table: SharedTable;
  /** Returns the smallest snapshot any open transaction of this thread may still read at. */
  readonly #horizon: () => number;
  #seen = 0;
  #epoch = -1;
  #pk = new Map<string, number>();
  #prev = new Int32Array(1024);
  #fields = new Map<number, Map<unknown, number[]>>();

  constructor(table: SharedTable, horizon: () => number) {
    this.table = table;
    this.#horizon = horizon;
    this.#reset();
  }

  #reset(): void {
    this.#seen = 0;
    this.#pk = new Map();
    this.#fields = new Map();
    this.table.schema.fields.forEach((f, k) => {
      if (f.indexed) this.#fields.set(k, new Map());
    });
  }

  /** Catches up with the published slots. Call after reading the snapshot's commit id. */
  sync(): void {
    const epoch = this.table.control.repairEpoch();
    const rows = this.table.rowCount();
    if (epoch !== this.#epoch || rows < this.#seen) {
      this.#reset();
      this.#epoch = epoch;
    }
    if (rows === this.#seen) return;
    if (this.#prev.length < rows) {
      const grown = new Int32Array(Math.max(rows, this.#prev.length * 2));
      grown.set(this.#prev);
      this.#prev = grown;
    }
    const t = this.table;
    for (let v = this.#seen; v < rows; v++) {
      const pk = t.readPk(v);
      this.#prev[v] = this.#pk.get(pk) ?? -1;
      this.#pk.set(pk, v);
      if (t.flags[v] === TOMBSTONE) continue;
      for (const [k, map] of this.#fields) {
        const value = t.columns[k]!.read(v);
        if (value === null) continue;
        const list = map.get(value);
        if (list === undefined) map.set(value, [v]);
        else {
          list.push(v);
          if (list.length >= 8 && (list.length & (list.length - 1)) === 0) this.#prune(list);
        }
      }
    }
    this.#seen = rows;
  }

  /** Drops versions superseded at or before the horizon (invisible to every open transaction). */
  #prune(list: number[]): void {
    const horizon = this.#horizon();
    const t = this.table;
    let w = 0;
    for (let r = 0; r < list.length; r++) {
      const v = list[r]!;
      const n = Atomics.load(t.next, v);
      if (n !== -1 && t.begin[n]! <= horizon) continue;
      list[w++] = v;
    }
    list.length = w;
  }

  /** Slot of the version of `pk` visible at snapshot s, or -1 (absent or deleted). */
  lookupPk(pk: string, s: number): number {
    let v = this.#pk.get(pk);
    if (v === undefined) return -1;
    const begin = this.table.begin;
    while (v !== -1 && begin[v]! > s) v = this.#prev[v]!;
    if (v === -1 || this.table.flags[v] === TOMBSTONE) return -1;
    return v;
  }

  /** Newest version slot of `pk` (any state), or -1. */
  newestSlot(pk: string): number {
    return this.#pk.get(pk) ?? -1;
  }

  /** Whether field k has a hash index. */
  hasIndex(k: number): boolean {
    return this.#fields.has(k);
  }

  /** Version slots visible at s whose field k equals value (field k must be indexed). */
  lookupField(k: number, value: unknown, s: number): number[] {
    const list = this.#fields.get(k)?.get(value);
    if (list === undefined) return [];
    const out: number[] = [];
    for (const v of list) if (this.table.isVisible(v, s)) out.push(v);
    return out;
  }
}
