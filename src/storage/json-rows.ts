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
import { Utf8Values } from './column-values.js';
import type { SharedTable } from './table.js';
import { formatUuid, UTF8_MARK, UUID_BYTES, UuidValues } from './uuid-values.js';

/** The JSON text of one value as it appears in a record's `toDict()` JSON. */
function valueText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Set) return JSON.stringify([...value]);
  return JSON.stringify(value) ?? 'null';
}

type Latin1Sliceable = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

/**
 * The JSON string literal of the UTF-8 bytes [start, end): printable ASCII without `"` or `\\`
 * (most text) is sliced as one-byte characters and quoted, skipping the UTF-8 decoder and JSON's
 * escaping scan; anything else goes through both.
 */
function rangeText(bytes: Latin1Sliceable, start: number, end: number): string {
  if (start === end) return '""';
  for (let p = start; p < end; p++) {
    const b = bytes[p]!;
    if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return JSON.stringify(bytes.utf8Slice(start, end));
  }
  return `"${bytes.latin1Slice(start, end)}"`;
}

/** The JSON string literal of entry i of a Utf8 column, from its bytes. */
function utf8Text(values: Utf8Values, i: number): string {
  const off = values.offsets.i32(i + 1);
  const end = off[i + 1]!;
  return rangeText(values.data.bytes(end) as Latin1Sliceable, off[i]!, end);
}

/** The JSON string literal of entry i of a pk or ref column: a packed UUID formatted, else its bytes. */
function uuidText(values: UuidValues, i: number): string {
  const off = values.offsets.i32(i + 1);
  const start = off[i]!;
  let end = off[i + 1]!;
  const bytes = values.data.bytes(end) as Latin1Sliceable;
  if (end - start === UUID_BYTES) return `"${formatUuid(bytes, start)}"`;
  if (end > start && bytes[end - 1] === UTF8_MARK) end--;
  return rangeText(bytes, start, end);
}

/** How a table's rows are written: `,"name":` per field, and a writer per column. */
interface RowWriter {
  keys: string[];
  values: Array<(v: number) => string>;
}

/** Kept per table (schemas do not change while it runs). */
const writers = new WeakMap<SharedTable, RowWriter>();

function writerOf(t: SharedTable): RowWriter {
  let w = writers.get(t);
  if (w === undefined) {
    w = {
      keys: t.schema.fields.map((f) => `,${JSON.stringify(f.name)}:`),
      values: t.columns.map((column) => {
        const values = column.values;
        if (values instanceof Utf8Values) return (v: number) => (column.validity.get(v) ? utf8Text(values, v) : 'null');
        if (values instanceof UuidValues) return (v: number) => (column.validity.get(v) ? uuidText(values, v) : 'null');
        return (v: number) => valueText(column.read(v));
      }),
    };
    writers.set(t, w);
  }
  return w;
}

/** The JSON text of committed slot v of t (pk first, then the fields in declaration order). */
export function slotText(t: SharedTable, v: number): string {
  const { keys, values } = writerOf(t);
  let out = `{"pk":${uuidText(t.pk, v)}`;
  for (let k = 0; k < keys.length; k++) out += keys[k]! + values[k]!(v);
  return `${out}}`;
}

/** The JSON text of a row object of t (a row the transaction wrote, or one `select` built). */
export function rowText(t: SharedTable, row: Row): string {
  const { keys } = writerOf(t);
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
