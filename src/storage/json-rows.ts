/**
 * @module storage/json-rows
 * `db.queryJson`: a query's rows as JSON text, written straight from the columns (no record, no
 * `toDict()` copy, no object for `JSON.stringify` to walk). The text of each row is the text
 * `JSON.stringify(record.toDict())` gives: pk first, then the fields in declaration order, nulls
 * as `null`, lists and sets as arrays, non-finite numbers as `null`.
 *
 * Committed rows are written as UTF-8 bytes into one buffer (json-bytes.ts), and a {@link JsonRows}
 * keeps those bytes and each row's range: no string per value or per row. Sent in a reply, the
 * bytes are copied into the frame bytes as they are ({@link JsonRows.utf8Piece}, json-pieces.ts);
 * its text is decoded only where a string is needed ({@link JsonRows.jsonText}).
 *
 * A {@link JsonRows} is a {@link RawJson}: put it anywhere in what a worker sends (`ws.send`,
 * `sv.publish`, `this.response`) and its text is spliced into the reply as is (json-text.ts).
 */
import { RawJson } from '../json-text.js';
import type { Utf8Piece } from '../json-pieces.js';
import { select, selectHits, type ReadContext, type Row } from './query.js';
import type { Parsed } from './filters.js';
import type { SharedTable } from './table.js';
import { JsonOut, rowWriter, valueText, writeSlot } from './json-bytes.js';
import type { Utf8Sliceable } from './column-values.js';

/** The JSON text of a row object of t (a row the transaction wrote, or one `select` built). */
export function rowText(t: SharedTable, row: Row): string {
  const { keys } = rowWriter(t);
  const fields = t.schema.fields;
  let out = `{"pk":${JSON.stringify(row.pk)}`;
  for (let k = 0; k < keys.length; k++) out += keys[k]! + valueText(row[fields[k]!.name]);
  return `${out}}`;
}

/** This thread's output buffer (rows are written here, then copied into their JsonRows). */
const out = new JsonOut();

/** Rows as JSON text, in query order: UTF-8 bytes and each row's range (or, built from strings, the strings). */
export class JsonRows extends RawJson {
  /** The rows' bytes, back to back (null: built from strings). */
  readonly #bytes: Utf8Sliceable | null;
  /** Row i is bytes [ranges[2i], ranges[2i + 1]). */
  #ranges: Int32Array | null;
  /** Whether a {@link utf8Piece} holds #ranges (then {@link reverse} copies them first). */
  #lent = false;
  #items: string[] | null;

  /** Rows from their JSON texts (one string per row). */
  constructor(items: string[]);
  /** @internal Rows as UTF-8 bytes and ranges (queryJson). */
  constructor(items: null, bytes: Buffer, ranges: Int32Array);
  constructor(items: string[] | null, bytes?: Buffer, ranges?: Int32Array) {
    super();
    this.#items = items;
    this.#bytes = (bytes ?? null) as Utf8Sliceable | null;
    this.#ranges = ranges ?? null;
  }

  /** The JSON text of each row. */
  get items(): string[] {
    if (this.#items === null) {
      const bytes = this.#bytes!;
      const ranges = this.#ranges!;
      const items = new Array<string>(ranges.length >> 1);
      for (let i = 0; i < items.length; i++) items[i] = bytes.utf8Slice(ranges[2 * i]!, ranges[2 * i + 1]!);
      this.#items = items;
    }
    return this.#items;
  }

  get length(): number {
    return this.#ranges === null ? this.#items!.length : this.#ranges.length >> 1;
  }

  /** Reverses the rows in place (as `Array.prototype.reverse`) and returns this. */
  reverse(): this {
    this.#items?.reverse();
    if (this.#lent && this.#ranges !== null) {
      this.#ranges = this.#ranges.slice();
      this.#lent = false;
    }
    const r = this.#ranges;
    if (r !== null) {
      for (let i = 0, j = r.length - 2; i < j; i += 2, j -= 2) {
        const s = r[i]!;
        const e = r[i + 1]!;
        r[i] = r[j]!;
        r[i + 1] = r[j + 1]!;
        r[j] = s;
        r[j + 1] = e;
      }
    }
    return this;
  }

  /** The rows from `start` to `end` (as `Array.prototype.slice`). */
  slice(start?: number, end?: number): JsonRows {
    if (this.#ranges === null) return new JsonRows(this.#items!.slice(start, end));
    const n = this.length;
    const from = relative(start, 0, n);
    const to = Math.max(from, relative(end, n, n));
    return new JsonRows(null, this.#bytes!, this.#ranges.slice(2 * from, 2 * to));
  }

  /** The JSON text of the array of rows. */
  jsonText(): string {
    if (this.#ranges === null) return `[${this.#items!.join(',')}]`;
    return new RowsBytes(this.#bytes!, this.#ranges).text();
  }

  /** The array's UTF-8 bytes as they are now (json-pieces.ts), or null when built from strings. */
  override utf8Piece(): Utf8Piece | null {
    if (this.#ranges === null) return null;
    this.#lent = true;
    return new RowsBytes(this.#bytes!, this.#ranges);
  }

  /** The rows as plain objects (parsed from the text: what `JSON.parse` of a reply would give). */
  toArray(): Array<{ pk: string } & Record<string, unknown>> {
    return JSON.parse(this.jsonText()) as Array<{ pk: string } & Record<string, unknown>>;
  }
}

/**
 * The array of rows as UTF-8 bytes: `[`, the rows in their order comma-separated, `]`. Holds the
 * rows' bytes (never changed once written) and ranges (copied by JsonRows.reverse once lent).
 */
class RowsBytes implements Utf8Piece {
  /** The rows' bytes as a plain Uint8Array: its `subarray` + `set` copies a row in about half the time of `Buffer#copy`. */
  readonly #bytes: Uint8Array;
  readonly #ranges: Int32Array;
  readonly byteLength: number;

  constructor(bytes: Buffer, ranges: Int32Array) {
    this.#bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    this.#ranges = ranges;
    let n = ranges.length > 0 ? 1 + (ranges.length >> 1) : 2; // brackets and commas
    for (let i = 0; i < ranges.length; i += 2) n += ranges[i + 1]! - ranges[i]!;
    this.byteLength = n;
  }

  writeTo(target: Buffer, at: number): void {
    const r = this.#ranges;
    const bytes = this.#bytes;
    let p = at;
    target[p++] = 0x5b;
    for (let i = 0; i < r.length; i += 2) {
      if (i > 0) target[p++] = 0x2c;
      const start = r[i]!;
      const end = r[i + 1]!;
      if (end - start < 16) for (let k = start; k < end; k++) target[p++] = bytes[k]!;
      else {
        target.set(bytes.subarray(start, end), p);
        p += end - start;
      }
    }
    target[p] = 0x5d;
  }

  /** Decoded once, through this thread's output buffer. */
  text(): string {
    const start = out.pos;
    out.ensure(this.byteLength);
    this.writeTo(out.buf, start);
    const text = out.buf.utf8Slice(start, start + this.byteLength);
    out.pos = start;
    return text;
  }
}

/** An index argument of `slice` (negative: from the end), clamped to [0, n]. */
function relative(i: number | undefined, fallback: number, n: number): number {
  if (i === undefined) return fallback;
  const k = Math.trunc(i) || 0;
  return k < 0 ? Math.max(n + k, 0) : Math.min(k, n);
}

/** The rows of a query as JSON text: from the columns when the filters allow, else from the rows select builds. */
export function queryJson(ctx: ReadContext, q: Parsed): JsonRows {
  const t = ctx.table;
  const hits = selectHits(ctx, q); // null: it read nothing yet, select does the whole query
  if (hits === null) return new JsonRows(select(ctx, q).map((row) => rowText(t, row)));
  const base = out.pos;
  const ranges = new Int32Array(2 * hits.length);
  for (let i = 0; i < hits.length; i++) {
    const h = hits[i]!;
    ranges[2 * i] = out.pos - base;
    if (typeof h === 'number') writeSlot(out, t, h);
    else out.text(rowText(t, h));
    ranges[2 * i + 1] = out.pos - base;
  }
  const bytes = out.take(base);
  out.pos = base;
  return new JsonRows(null, bytes, ranges);
}
