/**
 * @module workers/live-aggregate
 * The declarative aggregate form (`live.aggregate`, docs/live-queries.md): its groups read whole,
 * and its incremental path. Each group keeps accumulators beside its values ({@link GroupAcc}:
 * the rows, and per field the count, sum, min and max of its numbers), so a commit's written rows
 * move the groups they were and are in: each written pk is read as the state's commit left it
 * (subtracted from its old group when it matched) and as the snapshot has it (added to its new
 * group when it matches). count, sum and avg follow exactly; min and max follow an insert or a
 * raise; a group whose extreme was removed or lowered, or that holds a number that is not a safe
 * integer (a float sum depends on the order of the additions), is read again (that group only).
 */
import { ErrorCode, LexiconsError, SignalError } from '../errors.js';
import { MAX_LIVE_ROWS, type AggregateSpec } from '../live-query.js';
import type { GroupAcc } from '../live-job-contract.js';
import type { Db } from '../storage/api.js';
import type { Row } from '../storage/query.js';
import { WireCode } from '../wire.js';

export type Groups = Record<string, Record<string, number | null>>;

export function tooLarge(what: string): SignalError {
  return new SignalError(WireCode.LIVE_LIMIT, `live query result holds more than ${MAX_LIVE_ROWS} ${what}: narrow it (filters, limit)`);
}

function groupKey(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}

/** The fields the aggregates read. */
function fieldsOf(spec: AggregateSpec): string[] {
  const fields = new Set<string>();
  for (const agg of Object.values(spec.values)) {
    if (agg.op === 'count') continue;
    if (agg.field === undefined) throw new LexiconsError(ErrorCode.TYPE, `live.${agg.op} needs a field`);
    fields.add(agg.field);
  }
  return [...fields];
}

/** Adds (`sign` 1) or removes (-1) a row; false when the group must be read again (an extreme left, or a non-integer). */
function apply(acc: GroupAcc, fields: readonly string[], row: Row, sign: 1 | -1): boolean {
  acc.n += sign;
  let exact = true;
  for (const field of fields) {
    const v = row[field];
    if (typeof v !== 'number') continue;
    const a = (acc.f[field] ??= [0, 0, Infinity, -Infinity, 0]);
    a[0] += sign;
    a[1] += sign * v;
    if (!Number.isSafeInteger(v)) {
      a[4] += sign;
      exact = false;
    }
    if (sign === 1) {
      a[2] = Math.min(a[2], v);
      a[3] = Math.max(a[3], v);
    } else {
      if (v <= a[2] || v >= a[3]) exact = false;
      if (a[0] === 0) acc.f[field] = [0, 0, Infinity, -Infinity, 0];
    }
  }
  return exact && fields.every((f) => (acc.f[f]?.[4] ?? 0) === 0);
}

function valuesOf(spec: AggregateSpec, acc: GroupAcc): Record<string, number | null> {
  const values: Record<string, number | null> = {};
  for (const [name, agg] of Object.entries(spec.values)) {
    if (agg.op === 'count') {
      values[name] = acc.n;
      continue;
    }
    const a = acc.f[agg.field!];
    const count = a?.[0] ?? 0;
    values[name] = agg.op === 'sum' ? (a?.[1] ?? 0) : count === 0 ? null : agg.op === 'min' ? a![2] : agg.op === 'max' ? a![3] : a![1] / count;
  }
  return values;
}

/** The accumulators of a list of rows, summed in their order (a fresh read). */
function accOf(fields: readonly string[], rows: readonly Row[]): GroupAcc {
  const acc: GroupAcc = { n: 0, f: {} };
  for (const row of rows) apply(acc, fields, row, 1);
  return acc;
}

/** The groups of the rows matching the spec, read whole, with their accumulators. */
export function groupsOf(db: Db, spec: AggregateSpec): { groups: Groups; acc: Record<string, GroupAcc> } {
  const fields = fieldsOf(spec);
  const byGroup = new Map<string, Row[]>();
  for (const row of db.query(spec.table, spec.filters)) {
    const key = spec.groupBy === undefined ? '*' : groupKey(row[spec.groupBy]);
    let list = byGroup.get(key);
    if (list === undefined) {
      if (byGroup.size >= MAX_LIVE_ROWS) throw tooLarge('groups');
      byGroup.set(key, (list = []));
    }
    list.push(row);
  }
  const groups: Groups = {};
  const acc: Record<string, GroupAcc> = {};
  for (const [key, rows] of byGroup) {
    acc[key] = accOf(fields, rows);
    groups[key] = valuesOf(spec, acc[key]);
  }
  return { groups, acc };
}

/** How the incremental path reads rows: the filters' test, and a written pk as the state's commit left it and as it is now. */
export interface WrittenRow {
  matches(row: Row): boolean;
  before(pk: string): Row | null;
  after(pk: string): Row | null;
}

/**
 * The groups after the writes to the `written` pks, from the previous groups and accumulators;
 * undefined when the aggregate must be read whole (a group key that is not a plain value).
 */
export function advanceGroups(db: Db, spec: AggregateSpec, prev: { groups: Groups; acc: Record<string, GroupAcc> }, written: readonly string[], rows: WrittenRow): { groups: Groups; acc: Record<string, GroupAcc> } | undefined {
  const fields = fieldsOf(spec);
  const groups: Groups = { ...prev.groups };
  const acc: Record<string, GroupAcc> = { ...prev.acc };
  const touched = new Set<string>();
  const reread = new Map<string, unknown>(); // group key -> its groupBy value
  const keyOf = (row: Row): string | undefined => {
    if (spec.groupBy === undefined) return '*';
    const v = row[spec.groupBy];
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? groupKey(v) : undefined;
  };
  const move = (row: Row, sign: 1 | -1): boolean => {
    const key = keyOf(row);
    if (key === undefined) return false;
    let a = acc[key];
    if (a === undefined) {
      if (sign === -1) return false; // the state does not hold the row's group: not the state it claims
      a = { n: 0, f: {} };
    } else a = { n: a.n, f: Object.fromEntries(Object.entries(a.f).map(([f, v]) => [f, [...v]])) as GroupAcc['f'] };
    acc[key] = a;
    touched.add(key);
    if (!apply(a, fields, row, sign)) reread.set(key, spec.groupBy === undefined ? undefined : row[spec.groupBy]);
    return true;
  };
  for (const pk of new Set(written)) {
    const old = rows.before(pk);
    if (old !== null && rows.matches(old) && !move(old, -1)) return undefined;
    const now = rows.after(pk);
    if (now !== null && rows.matches(now) && !move(now, 1)) return undefined;
  }
  for (const key of touched) {
    const a = acc[key]!;
    if (a.n === 0) {
      delete acc[key];
      delete groups[key];
      continue;
    }
    if (reread.has(key)) {
      const filters = spec.groupBy === undefined ? spec.filters : { ...spec.filters, [spec.groupBy]: reread.get(key) as string };
      acc[key] = accOf(fields, db.query(spec.table, filters));
    }
    groups[key] = valuesOf(spec, acc[key]!);
  }
  if (Object.keys(groups).length > MAX_LIVE_ROWS) throw tooLarge('groups');
  return { groups, acc };
}
