/**
 * @module workers/live-diff
 * A live query's result and its changes, in the worker (docs/live-queries.md): what `query`
 * returned becomes a {@link LiveState} (rows, groups of aggregates, or a JSON value), and the
 * difference from the previous state becomes the `$live` item the client applies:
 * rows inserted, updated (changed fields only) and deleted by pk (with the new pk order when it
 * is not what the client would get by itself), changed groups only, or the new value.
 */
import { isLiveSpec, MAX_LIVE_ROWS, type AggregateSpec, type RowsSpec } from '../live-query.js';
import type { Db } from '../storage/api.js';
import type { LiveState } from '../live-job-contract.js';
import { Frame } from '../wire.js';
import { groupsOf, tooLarge } from './live-aggregate.js';

type LiveRow = Record<string, unknown> & { pk: string };

/** A record (or any row object) as a plain JSON row. */
export function plainRow(row: unknown): LiveRow {
  const r = row as { toDict?: () => LiveRow };
  return typeof r.toDict === 'function' ? r.toDict() : (JSON.parse(JSON.stringify(row)) as LiveRow);
}

function isRow(value: unknown): value is LiveRow {
  return typeof value === 'object' && value !== null && typeof (value as { pk?: unknown }).pk === 'string';
}

/** The state of what `query` returned, read through `db` at the transaction's snapshot. */
export function evaluate(db: Db, out: unknown): LiveState {
  if (isLiveSpec(out)) return out['~live'] === 'rows' ? rowsOf(db, out as RowsSpec<unknown>) : { form: 'groups', ...groupsOf(db, out as AggregateSpec) };
  if (Array.isArray(out) && out.every(isRow)) {
    if (out.length > MAX_LIVE_ROWS) throw tooLarge('rows');
    return { form: 'rows', rows: out.map(plainRow) };
  }
  const text = JSON.stringify(out === undefined ? null : out);
  return { form: 'value', value: JSON.parse(text) as unknown };
}

function rowsOf(db: Db, spec: RowsSpec<unknown>): LiveState {
  const limit = spec.limit === undefined ? MAX_LIVE_ROWS + 1 : spec.limit;
  const filters = { ...spec.filters, ...(spec.orderBy === undefined ? {} : { _sort: spec.orderBy as string | string[] }), _limit: limit };
  const rows = db.query(spec.table, filters);
  if (rows.length > MAX_LIVE_ROWS) throw tooLarge('rows');
  return { form: 'rows', rows: rows.map(plainRow) };
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The `$live` item of a whole result (a new subscription, or a result whose form changed). */
export function wholeItem(id: string, at: number, state: LiveState): string {
  const body = state.form === 'rows' ? { rows: state.rows } : state.form === 'groups' ? { groups: state.groups } : { value: state.value };
  return JSON.stringify({ [Frame.LIVE]: { id, at, ...body } });
}

/** The `$live` item taking the client from `prev` to `next` at commit `at`; undefined when nothing changed. */
export function changeItem(id: string, at: number, prev: LiveState | null, next: LiveState): string | undefined {
  if (prev === null || prev.form !== next.form) return wholeItem(id, at, next);
  let changes: Record<string, unknown> | undefined;
  if (prev.form === 'rows' && next.form === 'rows') changes = rowChanges(prev.rows, next.rows);
  else if (prev.form === 'groups' && next.form === 'groups') changes = groupChanges(prev.groups, next.groups);
  else if (prev.form === 'value' && next.form === 'value' && !same(prev.value, next.value)) return wholeItem(id, at, next);
  return changes === undefined ? undefined : JSON.stringify({ [Frame.LIVE]: { id, at, changes } });
}

function rowChanges(prev: LiveRow[], next: LiveRow[]): Record<string, unknown> | undefined {
  const before = new Map(prev.map((r) => [r.pk, r]));
  const after = new Set(next.map((r) => r.pk));
  const inserted: LiveRow[] = [];
  const updated: LiveRow[] = [];
  for (const row of next) {
    const old = before.get(row.pk);
    if (old === undefined) {
      inserted.push(row);
      continue;
    }
    let delta: LiveRow | undefined;
    for (const key of Object.keys(row)) if (!same(row[key], old[key])) (delta ??= { pk: row.pk })[key] = row[key];
    if (delta !== undefined) updated.push(delta);
  }
  const deleted = prev.filter((r) => !after.has(r.pk)).map((r) => r.pk);
  // The order the client gets by itself: its rows minus the deleted ones, then the inserted ones.
  const gone = new Set(deleted);
  const expected = prev.filter((r) => !gone.has(r.pk)).map((r) => r.pk);
  for (const row of inserted) expected.push(row.pk);
  const reordered = expected.some((pk, i) => next[i]!.pk !== pk);
  if (inserted.length === 0 && updated.length === 0 && deleted.length === 0 && !reordered) return undefined;
  const changes: Record<string, unknown> = {};
  if (inserted.length > 0) changes.inserted = inserted;
  if (updated.length > 0) changes.updated = updated;
  if (deleted.length > 0) changes.deleted = deleted;
  if (reordered) changes.order = next.map((r) => r.pk);
  return changes;
}

function groupChanges(prev: Record<string, Record<string, number | null>>, next: Record<string, Record<string, number | null>>): Record<string, unknown> | undefined {
  const groups: Record<string, Record<string, number | null> | null> = {};
  let any = false;
  for (const [key, values] of Object.entries(next)) {
    if (!same(prev[key], values)) {
      groups[key] = values;
      any = true;
    }
  }
  for (const key of Object.keys(prev)) {
    if (!(key in next)) {
      groups[key] = null;
      any = true;
    }
  }
  return any ? { groups } : undefined;
}
