/**
 * @module storage/json-bytes
 * The JSON text of committed rows written as UTF-8 bytes straight from the columns into one
 * growable buffer of this thread (`db.queryJson`, json-rows.ts): no string per value. A Utf8
 * column's bytes are copied as they are (only a value with a byte that JSON escapes, `"`, `\` or a
 * control character, goes through `JSON.stringify`), a packed UUID is written in its 36-character
 * form by a byte table, numbers are formatted once and written as ASCII. The text is the text
 * `JSON.stringify(record.toDict())` gives, byte for byte once decoded (tested in
 * test/storage/query-json.test.ts): raw non-ASCII characters are valid JSON, and stored UTF-8 holds
 * no lone surrogate (a JS string's lone surrogate is written as U+FFFD, and read back as U+FFFD).
 */
import { BoolValues, Float64Values, Int64Values, Utf8Values, type Utf8Sliceable } from './column-values.js';
import type { SharedTable } from './table.js';
import { UTF8_MARK, UUID_BYTES, UuidValues, writeUuidAscii } from './uuid-values.js';

/** The JSON text of one value as it appears in a record's `toDict()` JSON. */
export function valueText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Set) return JSON.stringify([...value]);
  return JSON.stringify(value) ?? 'null';
}

/**
 * This thread's output buffer: grown (doubled) as needed and reused by every query; callers copy
 * what they keep ({@link JsonOut.take}). Workers run one call at a time, so one per thread is enough.
 */
export class JsonOut {
  buf: Utf8Sliceable = Buffer.allocUnsafeSlow(64 * 1024) as Utf8Sliceable;
  pos = 0;

  /** Room for n more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n)) as Utf8Sliceable;
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  byte(b: number): void {
    if (this.pos >= this.buf.length) this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Any string, as UTF-8. */
  text(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.utf8Write(s, this.pos, s.length * 3);
  }

  /** A string of ASCII characters (numbers, literals, pre-quoted keys). */
  ascii(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** Bytes, copied. */
  bytes(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    if (n < 64) for (let i = start; i < end; i++) buf[p++] = src[i]!;
    else {
      buf.set(src.subarray(start, end), p);
      p += n;
    }
    this.pos = p;
  }

  /** The JSON string literal of the UTF-8 bytes [start, end) of src (copied and checked in one pass). */
  stringLiteral(src: Utf8Sliceable, start: number, end: number): void {
    this.ensure(end - start + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 0x22;
    for (let i = start; i < end; i++) {
      const b = src[i]!;
      if (b < 0x20 || b === 0x22 || b === 0x5c) {
        // A byte JSON escapes: the value goes through JSON.stringify (pos was not moved yet).
        this.text(JSON.stringify(src.utf8Slice(start, end)));
        return;
      }
      buf[p++] = b;
    }
    buf[p++] = 0x22;
    this.pos = p;
  }

  /** The JSON string literal of a canonical UUID from its 16 bytes at `at`. */
  uuidLiteral(src: Uint8Array, at: number): void {
    this.ensure(38);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 0x22;
    p = writeUuidAscii(src, at, buf, p);
    buf[p++] = 0x22;
    this.pos = p;
  }

  /**
   * A finite number as `String(x)` writes it. Most stored floats (timestamps in seconds with
   * micro- or milliseconds, prices) have a short decimal form that V8 finds slowly (~0.5 us each):
   * for 1 <= |x| < 2^53 this tries k = 0, 1, .. decimals while only one k-decimal number can read
   * back as x (10^-k above twice x's ulp): the first k whose m / 10^k (m = x 10^k rounded, +-1) is x
   * gives the shortest round-trip digits, which is what `String(x)` prints (ECMAScript
   * Number::toString). m / 10^k is correctly rounded (m < 2^53 and 10^k exact), as parsing the
   * decimal is. Anything else goes to `String(x)`.
   */
  number(x: number): void {
    const a = x < 0 ? -x : x;
    if (a >= 1 && a < MAX_EXACT) {
      const ulp = ulpOf(a);
      for (let k = 0; k <= MAX_DECIMALS; k++) {
        const p = POW10[k]!;
        if (INV_POW10[k]! <= ulp || a * p >= MAX_EXACT) break;
        const r = Math.round(a * p);
        const m = r / p === a ? r : (r - 1) / p === a ? r - 1 : (r + 1) / p === a ? r + 1 : -1;
        if (m < 0) continue;
        this.ensure(24);
        if (x < 0) this.buf[this.pos++] = 0x2d;
        this.#fixed(m, k);
        return;
      }
    }
    this.ascii(String(x));
  }

  /** The digits of the integer m (< 2^53) with a point before its last k digits (m has more than k digits). */
  #fixed(m: number, k: number): void {
    const buf = this.buf;
    let n = 1;
    for (let q = m; q >= 10; q = Math.floor(q / 10)) n++;
    let p = this.pos + n + (k > 0 ? 1 : 0);
    this.pos = p;
    for (let i = 0; i < n; i++) {
      if (i === k && k > 0) buf[--p] = 0x2e;
      const q = Math.floor(m / 10);
      buf[--p] = 48 + (m - q * 10);
      m = q;
    }
  }

  /** A copy of bytes [start, pos) that outlives the next query. */
  take(start: number): Buffer {
    const out = Buffer.allocUnsafe(this.pos - start);
    this.buf.copy(out, 0, start, this.pos);
    return out;
  }
}

/** Writes entry i of a pk or ref column: a packed UUID formatted, else its string's bytes. */
function writeUuid(out: JsonOut, values: UuidValues, i: number): void {
  const off = values.offsets.i32(i + 1);
  const start = off[i]!;
  let end = off[i + 1]!;
  const bytes = values.data.bytes(end) as Utf8Sliceable;
  if (end - start === UUID_BYTES) return out.uuidLiteral(bytes, start);
  if (end > start && bytes[end - 1] === UTF8_MARK) end--;
  out.stringLiteral(bytes, start, end);
}

const NULL = 'null';
/** 2^53: integers below are exact. */
const MAX_EXACT = 2 ** 53;
/** Most decimals tried by {@link JsonOut.number} before `String(x)`. */
const MAX_DECIMALS = 15;

const POW10 = Float64Array.from({ length: MAX_DECIMALS + 1 }, (_, k) => 10 ** k);
const INV_POW10 = POW10.map((p) => 1 / p);
/** Twice the ulp of a number whose binary exponent is e (0 <= e < 53), by e. */
const ULP2 = Float64Array.from({ length: 53 }, (_, e) => 2 ** (e - 51));
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Index of the high word of a float64 (the sign and exponent bits) on this machine. */
const HIGH = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f ? 1 : 0;

/**
 * At least the unit in the last place of 1 <= a < 2^53: twice the ulp of a's binade (read from
 * its exponent bits), so the wider interval at a power of two is covered too.
 */
function ulpOf(a: number): number {
  F64[0] = a;
  return ULP2[((U32[HIGH]! >>> 20) & 0x7ff) - 1023]!;
}

/** A writer of one column's value at slot v (`null` for a null). */
type ValueWriter = (out: JsonOut, v: number) => void;

function columnWriter(column: SharedTable['columns'][number]): ValueWriter {
  const { validity, values } = column;
  if (values instanceof Utf8Values) {
    return (out, v) => {
      if (!validity.get(v)) return out.ascii(NULL);
      const off = values.offsets.i32(v + 1);
      const end = off[v + 1]!;
      out.stringLiteral(values.data.bytes(end) as Utf8Sliceable, off[v]!, end);
    };
  }
  if (values instanceof UuidValues) return (out, v) => (validity.get(v) ? writeUuid(out, values, v) : out.ascii(NULL));
  if (values instanceof Float64Values || values instanceof Int64Values) {
    return (out, v) => {
      if (!validity.get(v)) return out.ascii(NULL);
      const x = values.read(v);
      if (Number.isFinite(x)) out.number(x);
      else out.ascii(NULL);
    };
  }
  if (values instanceof BoolValues) return (out, v) => out.ascii(!validity.get(v) ? NULL : values.read(v) ? 'true' : 'false');
  // Dictionary strings, lists, sets: their value's JSON text (rarely on a hot list).
  return (out, v) => out.text(valueText(column.read(v)));
}

/** How a table's rows are written: `,"name":` per field (ASCII), and a writer per column. */
interface RowWriter {
  keys: string[];
  keyBytes: Buffer[];
  values: ValueWriter[];
}

/** Kept per table (schemas do not change while it runs). */
const writers = new WeakMap<SharedTable, RowWriter>();

export function rowWriter(t: SharedTable): RowWriter {
  let w = writers.get(t);
  if (w === undefined) {
    const keys = t.schema.fields.map((f) => `,${JSON.stringify(f.name)}:`);
    w = { keys, keyBytes: keys.map((k) => Buffer.from(k, 'utf8')), values: t.columns.map(columnWriter) };
    writers.set(t, w);
  }
  return w;
}

const PK_OPEN = Buffer.from('{"pk":', 'latin1');

/** Writes the JSON text of committed slot v of t (pk first, then the fields in declaration order). */
export function writeSlot(out: JsonOut, t: SharedTable, v: number): void {
  const { keyBytes, values } = rowWriter(t);
  out.bytes(PK_OPEN, 0, PK_OPEN.length);
  writeUuid(out, t.pk, v);
  for (let k = 0; k < keyBytes.length; k++) {
    const key = keyBytes[k]!;
    out.bytes(key, 0, key.length);
    values[k]!(out, v);
  }
  out.byte(0x7d);
}
