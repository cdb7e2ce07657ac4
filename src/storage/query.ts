/**
 * @module storage/query
 * The read path: rows of a table at a transaction's snapshot plus its own writes, matching filters
 * compiled by filters.ts.
 *
 * Candidate rows come from the pk index (`pk` equality), a field hash index (equality or `in` on an
 * indexed field), or a scan of the version slots. A scan decodes only the columns a predicate needs
 * and materializes a row object only once every column predicate has passed.
 */
import type { Filters } from './api.js';
import { normalize, type Cond, type Parsed } from './filters.js';
import type { TableIndex } from './indexes.js';
import type { SharedTable } from './table.js';

export type Row = { pk: string } & Record<string, unknown>;

/** What the read path needs from a transaction for one table. */
export interface ReadContext {
  readonly table: SharedTable;
  readonly index: TableIndex;
  readonly snapshot: number;
  /** Committed version slots replaced or deleted by the transaction's own writes. */
  readonly shadowed: ReadonlySet<number>;
  /** Rows the transaction wrote (upserts, not deletions), newest values. */
  readonly pending: Iterable<Row>;
  /** Records a read of key (field k, value), k = -1 for the pk: a hit or a miss (read-set.ts). */
  readKey(k: number, value: unknown): void;
  /** Records a read of the whole table (a scan). */
  readAll(): void;
  /** pks of rows of `target` matching `sub` (through-reference filters). */
  resolveRef(target: string, sub: Filters): Set<string>;
}

/** A copy of a row with arrays copied (rows of a write buffer must not be shared). */
export function copyRow(row: Row): Row {
  const out: Row = { pk: row.pk };
  for (const key of Object.keys(row)) {
    const value = row[key];
    out[key] = Array.isArray(value) ? [...value] : value;
  }
  return out;
}

function readCol(t: SharedTable, k: number, v: number): unknown {
  return k < 0 ? t.readPk(v) : t.columns[k]!.read(v);
}

/**
 * Candidate committed slots: from an index when an equality/`in` predicate allows, else null (scan).
 * Records the read: the keys probed (found or not: a later insert of one must conflict), or the
 * whole table for a scan. A non-string pk probe matches nothing, ever: no key to record.
 */
function candidates(ctx: ReadContext, conds: Cond[]): number[] | null {
  const { index, snapshot } = ctx;
  const pkAt = (pk: unknown): number => {
    if (typeof pk !== 'string') return -1;
    ctx.readKey(-1, pk);
    return index.lookupPk(pk, snapshot);
  };
  const fieldAt = (k: number, value: unknown): number[] => {
    ctx.readKey(k, value);
    return index.lookupField(k, value, snapshot);
  };
  for (const c of conds) {
    if (c.k === -1 && c.op === 'eq') {
      const v = pkAt(c.value);
      return v >= 0 ? [v] : [];
    }
    if (c.k === -1 && c.op === 'in' && (Array.isArray(c.value) || c.value instanceof Set)) {
      const out: number[] = [];
      for (const item of new Set(c.value as Iterable<unknown>)) {
        const v = pkAt(normalize(item));
        if (v >= 0) out.push(v);
      }
      return out.sort((a, b) => a - b);
    }
  }
  for (const c of conds) {
    if (c.k >= 0 && index.hasIndex(c.k)) {
      if (c.op === 'eq' && c.value !== null) return fieldAt(c.k, c.value);
      if (c.op === 'in' && (Array.isArray(c.value) || c.value instanceof Set)) {
        const out: number[] = [];
        for (const item of new Set(c.value as Iterable<unknown>)) if (item !== null) out.push(...fieldAt(c.k, normalize(item)));
        return out;
      }
    }
  }
  ctx.readAll();
  return null;
}

function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1; // nulls last
  if (b === null || b === undefined) return -1;
  return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
}

/**
 * The filters of one query bound to its read context: the test every candidate goes through in
 * {@link select}, {@link countMatching} and topHits. A committed slot passes when it is visible
 * at the snapshot, not replaced by the transaction's own writes, and its columns (read one by one,
 * no row built) pass every predicate and through-reference filter; a row the transaction wrote
 * passes on its values. A class with two small methods: each caller's loop calls them directly
 * (monomorphic, inlined), where a shared loop would call back into the callers once per slot.
 */
class Matcher {
  readonly #ctx: ReadContext;
  readonly #conds: readonly Cond[];
  readonly #refSets: ReadonlyArray<{ k: number; pks: Set<unknown> }>;
  #names: readonly string[] | undefined;

  constructor(ctx: ReadContext, q: Parsed) {
    this.#ctx = ctx;
    this.#conds = q.conds;
    this.#refSets = q.refs.length === 0 ? [] : q.refs.map((r) => ({ k: r.k, pks: ctx.resolveRef(r.target, r.sub) as Set<unknown> }));
  }

  /** Whether committed version slot v passes. */
  slot(v: number): boolean {
    const { table: t, snapshot, shadowed } = this.#ctx;
    if (!t.isVisible(v, snapshot) || shadowed.has(v)) return false;
    for (const c of this.#conds) if (!c.test(readCol(t, c.k, v))) return false;
    for (const r of this.#refSets) if (!r.pks.has(readCol(t, r.k, v))) return false;
    return true;
  }

  /** Whether a row the transaction wrote passes. */
  row(row: Row): boolean {
    // The field names only for the transaction's own rows (most queries have none): not per query.
    const names = (this.#names ??= this.#ctx.table.schema.fields.map((f) => f.name));
    for (const c of this.#conds) if (!c.test(row[c.k < 0 ? 'pk' : names[c.k]!] ?? null)) return false;
    for (const r of this.#refSets) if (!r.pks.has(row[r.k < 0 ? 'pk' : names[r.k]!])) return false;
    return true;
  }
}

/**
 * A match: a committed version slot, or a row the transaction wrote (its own values, not to be
 * shared: {@link materialize} copies it).
 */
export type Hit = number | Row;

/** The rows of hits, as {@link select} returns them (committed slots read, own writes copied). */
export function materialize(t: SharedTable, hits: readonly Hit[]): Row[] {
  const out = new Array<Row>(hits.length);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    out[i] = typeof h === 'number' ? t.readRow(h) : copyRow(h);
  }
  return out;
}

/**
 * The matches of filters that need no row object to decide (no `_where`, no extremes, no `_sort`
 * without `_limit`), in {@link select}'s order, without reading any column a predicate or a sort
 * does not name; null for the other filters (select builds rows for them).
 */
export function selectHits(ctx: ReadContext, q: Parsed): Hit[] | null {
  if (q.where !== undefined || q.extremes.length > 0) return null;
  if (q.sort.length > 0) return q.limit === undefined ? null : topHits(ctx, q, q.limit);
  const m = new Matcher(ctx, q);
  const out: Hit[] = [];
  const cands = candidates(ctx, q.conds);
  if (cands !== null) {
    for (const v of cands) if (m.slot(v)) out.push(v);
  } else {
    for (let v = 0, rows = ctx.table.rowCount(); v < rows; v++) if (m.slot(v)) out.push(v);
  }
  for (const row of ctx.pending) if (m.row(row)) out.push(row);
  if (q.limit !== undefined && out.length > q.limit) out.length = q.limit;
  return out;
}

/** Rows matching the parsed filters at the context's snapshot, including the transaction's own writes. */
export function select(ctx: ReadContext, q: Parsed): Row[] {
  const hits = selectHits(ctx, q);
  if (hits !== null) return materialize(ctx.table, hits);
  const t = ctx.table;
  const m = new Matcher(ctx, q);
  const out: Row[] = [];
  const accept = (row: Row): void => {
    if (q.where === undefined || q.where(row)) out.push(row);
  };
  const cands = candidates(ctx, q.conds);
  if (cands !== null) {
    for (const v of cands) if (m.slot(v)) accept(t.readRow(v));
  } else {
    for (let v = 0, rows = t.rowCount(); v < rows; v++) if (m.slot(v)) accept(t.readRow(v));
  }
  for (const row of ctx.pending) if (m.row(row)) accept(copyRow(row));
  let rows = out;
  for (const e of q.extremes) {
    let best: unknown = null;
    for (const row of rows) {
      const v = row[e.name];
      if (v === null || v === undefined) continue;
      if (best === null || (e.op === 'max' ? compareValues(v, best) > 0 : compareValues(v, best) < 0)) best = v;
    }
    rows = best === null ? [] : rows.filter((row) => row[e.name] === best);
  }
  if (q.sort.length > 0) {
    rows.sort((a, b) => {
      for (const s of q.sort) {
        const c = compareValues(a[s.name], b[s.name]);
        if (c !== 0) return s.desc ? (a[s.name] == null || b[s.name] == null ? c : -c) : c;
      }
      return 0;
    });
  }
  if (q.limit !== undefined && rows.length > q.limit) rows.length = q.limit;
  return rows;
}

/** Number of matching rows without materializing them (filters without _where/_sort/extremes). */
export function countMatching(ctx: ReadContext, q: Parsed): number {
  if (q.where !== undefined || q.extremes.length > 0) return Math.min(select(ctx, q).length, q.limit ?? Infinity);
  const t = ctx.table;
  const m = new Matcher(ctx, q);
  let n = 0;
  const cands = candidates(ctx, q.conds);
  if (cands !== null) {
    for (const v of cands) if (m.slot(v)) n++;
  } else {
    for (let v = 0, rows = t.rowCount(); v < rows; v++) if (m.slot(v)) n++;
  }
  for (const row of ctx.pending) if (m.row(row)) n++;
  return Math.min(n, q.limit ?? Infinity);
}

/** Sort order of two rows by `sort` (nulls last in both directions), as `select` sorts them. */
export function compareRows(sort: Parsed['sort'], a: Row, b: Row): number {
  return compareKeys(
    sort,
    sort.map((s) => a[s.name]),
    sort.map((s) => b[s.name]),
  );
}

/** Sort order of two key lists (nulls last in both directions), as `select` sorts rows. */
function compareKeys(sort: Parsed['sort'], a: unknown[], b: unknown[]): number {
  for (let i = 0; i < sort.length; i++) {
    const x = a[i];
    const y = b[i];
    const c = compareValues(x, y);
    if (c !== 0) return sort[i]!.desc ? (x == null || y == null ? c : -c) : c;
  }
  return 0;
}

/** A candidate of a top-k selection: its sort keys, its position (ties keep it), and where it is. */
interface TopEntry {
  keys: unknown[];
  seq: number;
  slot: number;
  row: Row | undefined;
}

/**
 * `_sort` + `_limit` without `_where` or extremes: a bounded top-k ("top-N heapsort"). Candidates
 * are filtered on the columns their predicates name, then only their sort columns are read; a
 * max-heap of the best `limit` entries keeps the rest out, so no row outside the result is
 * materialized and nothing is sorted beyond `limit` entries. Ties keep candidate order (committed
 * slots ascending, then the transaction's own writes): the same rows, in the same order, as
 * sorting everything stably and cutting at `limit`. Returns hits; {@link select} reads their rows.
 */
function topHits(ctx: ReadContext, q: Parsed, limit: number): Hit[] {
  if (limit === 0) return [];
  const t = ctx.table;
  const names = t.schema.fields.map((f) => f.name);
  const sortCols = q.sort.map((s) => (s.name === 'pk' ? -1 : names.indexOf(s.name)));
  const heap: TopEntry[] = [];
  // Worse first: the heap's root is the entry the next better candidate evicts.
  const worse = (a: TopEntry, b: TopEntry): boolean => {
    const c = compareKeys(q.sort, a.keys, b.keys);
    return c > 0 || (c === 0 && a.seq > b.seq);
  };
  const up = (i: number): void => {
    const e = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!worse(e, heap[p]!)) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = e;
  };
  const down = (i: number): void => {
    const e = heap[i]!;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && worse(heap[r]!, heap[l]!) ? r : l;
      if (!worse(heap[c]!, e)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = e;
  };
  let seq = 0;
  const offer = (keys: unknown[], slot: number, row: Row | undefined): void => {
    const entry: TopEntry = { keys, seq: seq++, slot, row };
    if (heap.length < limit) {
      heap.push(entry);
      up(heap.length - 1);
    } else if (worse(heap[0]!, entry)) {
      heap[0] = entry;
      down(0);
    }
  };
  const m = new Matcher(ctx, q);
  const offerSlot = (v: number): void => {
    if (!m.slot(v)) return;
    const keys = new Array<unknown>(sortCols.length);
    for (let i = 0; i < sortCols.length; i++) keys[i] = readCol(t, sortCols[i]!, v);
    offer(keys, v, undefined);
  };
  const cands = candidates(ctx, q.conds);
  if (cands !== null) for (const v of cands) offerSlot(v);
  else for (let v = 0, rows = t.rowCount(); v < rows; v++) offerSlot(v);
  for (const row of ctx.pending) if (m.row(row)) offer(q.sort.map((s) => row[s.name]), -1, row);
  heap.sort((a, b) => compareKeys(q.sort, a.keys, b.keys) || a.seq - b.seq);
  return heap.map((e) => e.row ?? e.slot);
}
