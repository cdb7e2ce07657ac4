/**
 * @module storage/json-rows
 * `db.queryJson`: a query's rows as JSON text, written straight from the columns (no record, no
 * `toDict()` copy, no object for `JSON.stringify` to walk). The text of each row is the text
 * `JSON.stringify(record.toDict())` gives: pk first, then the fields in declaration order, nulls
 * as `null`, lists and sets as arrays, non-finite numbers as `null`.
 *
 * A {@link JsonRows} is a {@link RawJson}: put it anywhere in what a worker sends (`ws.send`,
 * `sv.publish`, `this.response`) and its text is spliced into the reply as is (json-text.ts).
 */
import { RawJson } from '../json-text.js';
import { select, selectHits, type ReadContext, type Row } from './query.js';
import type { Parsed } from './filters.js';
import type { SharedTable } from './table.js';

/** The JSON text of one value as it appears in a record's `toDict()` JSON. */
function valueText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Set) return JSON.stringify([...value]);
  return JSON.stringify(value) ?? 'null';
}

/** `,"name":` for every field of a table, kept per table (schemas do not change while it runs). */
const keyTexts = new WeakMap<SharedTable, string[]>();

function keysOf(t: SharedTable): string[] {
  let keys = keyTexts.get(t);
  if (keys === undefined) {
    keys = t.schema.fields.map((f) => `,${JSON.stringify(f.name)}:`);
    keyTexts.set(t, keys);
  }
  return keys;
}

/** The JSON text of committed slot v of t (pk first, then the fields in declaration order). */
export function slotText(t: SharedTable, v: number): string {
  const keys = keysOf(t);
  const columns = t.columns;
  let out = `{"pk":${JSON.stringify(t.readPk(v))}`;
  for (let k = 0; k < keys.length; k++) out += keys[k]! + valueText(columns[k]!.read(v));
  return `${out}}`;
}

/** The JSON text of a row object of t (a row the transaction wrote, or one `select` built). */
export function rowText(t: SharedTable, row: Row): string {
  const keys = keysOf(t);
  const fields = t.schema.fields;
  let out = `{"pk":${JSON.stringify(row.pk)}`;
  for (let k = 0; k < keys.length; k++) out += keys[k]! + valueText(row[fields[k]!.name]);
  return `${out}}`;
}

/** Rows as JSON text: one string per row, in query order. */
export class JsonRows extends RawJson {
  /** The JSON text of each row. */
  readonly items: string[];

  constructor(items: string[]) {
    super();
    this.items = items;
  }

  get length(): number {
    return this.items.length;
  }

  /** Reverses the rows in place (as `Array.prototype.reverse`) and returns this. */
  reverse(): this {
    this.items.reverse();
    return this;
  }

  /** The rows from `start` to `end` (as `Array.prototype.slice`). */
  slice(start?: number, end?: number): JsonRows {
    return new JsonRows(this.items.slice(start, end));
  }

  /** The JSON text of the array of rows. */
  jsonText(): string {
    return `[${this.items.join(',')}]`;
  }

  /** The rows as plain objects (parsed from the text: what `JSON.parse` of a reply would give). */
  toArray(): Array<{ pk: string } & Record<string, unknown>> {
    return JSON.parse(this.jsonText()) as Array<{ pk: string } & Record<string, unknown>>;
  }
}

/** The rows of a query as JSON text: from the columns when the filters allow, else from the rows select builds. */
export function queryJson(ctx: ReadContext, q: Parsed): JsonRows {
  const t = ctx.table;
  const hits = selectHits(ctx, q); // null: it read nothing yet, select does the whole query
  if (hits === null) return new JsonRows(select(ctx, q).map((row) => rowText(t, row)));
  const items = new Array<string>(hits.length);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    items[i] = typeof h === 'number' ? slotText(t, h) : rowText(t, h);
  }
  return new JsonRows(items);
}
