/**
 * @module workers/live-incremental
 * The incremental path of the declarative rows form (docs/live-queries.md "Incremental vs
 * re-run"): from the previous rows and the pks the commits since then wrote in the query's table,
 * the new rows, without running the query again. Each written pk is read by pk at the snapshot
 * and tested against the filters (the same predicates `db.query` uses, storage/filters.ts):
 *
 * - without `limit`: a written row that matches is updated in place or appended (then the rows are
 *   sorted by `orderBy`, if any); one that no longer matches (or was deleted) leaves. Cost: the
 *   written rows, not the result;
 * - with `limit` (top-k): when no written row was in the result and none that matches now would
 *   enter it, the result stands unchanged (cost: the written rows); otherwise the bounded top-k is
 *   read again (the caller re-runs it).
 *
 * Filters through references and `max`/`min` filters always re-run.
 */
import type { LiveFilters, RowsSpec } from '../live-query.js';
import type { Db } from '../storage/api.js';
import { parseFilters, type Parsed } from '../storage/filters.js';
import { compareRows, type Row } from '../storage/query.js';

/** More written pks than this: the query is re-run instead. */
export const MAX_INCREMENTAL_PKS = 256;

type LiveRow = Record<string, unknown> & { pk: string };

/** The filters' test of a row and the order; undefined when the filters go through references or `max`/`min` (re-run). */
export function filterTest(db: Db, table: string, filters: LiveFilters, orderBy?: string | readonly string[]): { matches(row: Row): boolean; sort: Parsed['sort'] } | undefined {
  const schema = db.schema.byName.get(table);
  if (schema === undefined) return undefined;
  const q = parseFilters(schema, { ...filters, ...(orderBy === undefined ? {} : { _sort: orderBy as string | string[] }) });
  if (q.refs.length > 0 || q.extremes.length > 0) return undefined;
  return { matches: (row) => q.conds.every((c) => c.test(row[c.k < 0 ? 'pk' : c.name] ?? null)), sort: q.sort };
}

/** The rows after the writes to `written` pks, or undefined when the query must be re-run. */
export function advanceRows(db: Db, spec: RowsSpec<unknown>, prev: readonly LiveRow[], written: readonly string[], plain: (row: unknown) => LiveRow): LiveRow[] | undefined {
  if (written.length > MAX_INCREMENTAL_PKS) return undefined;
  const q = filterTest(db, spec.table, spec.filters, spec.orderBy);
  if (q === undefined) return undefined;
  const matching = (pk: string): LiveRow | undefined => {
    const record = db.get(spec.table, pk);
    return record === null || !q.matches(record as Row) ? undefined : plain(record);
  };
  if (spec.limit !== undefined) {
    const inResult = new Set(prev.map((r) => r.pk));
    const last = prev.at(-1);
    for (const pk of written) {
      if (inResult.has(pk)) return undefined;
      const row = matching(pk);
      if (row === undefined) continue;
      if (prev.length < spec.limit || last === undefined || compareRows(q.sort, row as Row, last as Row) <= 0) return undefined;
    }
    return [...prev];
  }
  const byPk = new Map(prev.map((r) => [r.pk, r]));
  for (const pk of new Set(written)) {
    const row = matching(pk);
    if (row === undefined) byPk.delete(pk);
    else byPk.set(pk, row);
  }
  const rows = [...byPk.values()];
  if (q.sort.length > 0) rows.sort((a, b) => compareRows(q.sort, a as Row, b as Row));
  return rows;
}
