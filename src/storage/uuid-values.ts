/**
 * @module storage/uuid-values
 * The value store of `pk` and `ref` columns: Arrow's variable-width layout (Int32 offsets n+1 +
 * bytes, as Utf8), where a value in the canonical UUID form (lowercase `8-4-4-4-12` hex, what
 * `crypto.randomUUID()` gives) takes its 16 binary bytes instead of 36 characters, and any other
 * string (user-chosen pks, `offset@channel`, an uppercase or braced UUID) keeps its UTF-8 bytes.
 *
 * The tag is the slot's length, so a column mixes both forms freely and a read needs no other
 * buffer: a range of exactly 16 bytes is a UUID; a string whose UTF-8 is exactly 16 bytes is
 * stored with one 0xFF byte after it (17 bytes), and 0xFF never occurs in UTF-8, so no string can
 * be mistaken for a UUID. Only the canonical form is packed, because only it round-trips: a read
 * gives back exactly the string written.
 *
 * No Atomics here: a slot is written while unpublished (at or past the table's row count), like
 * every other column, and the commit protocol's Atomics.store of the row count publishes it; a
 * published range is never rewritten while anyone reads (reclaim.ts moves slots with no reader).
 */
import * as arrow from 'apache-arrow';
import { ErrorCode, LexiconsError } from '../errors.js';
import { MAX_UTF8_BYTES, moveBytes, writeEmptyRange, type Utf8Sliceable, type Values } from './column-values.js';
import type { GrowBuf } from './grow-buf.js';

/** Bytes of a packed UUID (the tag: a slot of exactly this length). */
export const UUID_BYTES = 16;
/** Characters of the canonical form. */
const UUID_CHARS = 36;
/** The byte after a string whose UTF-8 is exactly {@link UUID_BYTES} long (never part of UTF-8). */
export const UTF8_MARK = 0xff;
/** The field metadata of a packed column in a snapshot file (key and value). */
export const ENCODING_KEY = 'lexicons.encoding';
export const ENCODING_UUID = 'uuid16+utf8';

/** ASCII of the two lowercase hex digits of each byte: HEX_ASCII[2b], HEX_ASCII[2b + 1]. */
export const HEX_ASCII = Uint8Array.from({ length: 512 }, (_, k) => '0123456789abcdef'.charCodeAt(k & 1 ? (k >> 1) & 15 : k >> 5));
/** Whether byte k of a UUID is preceded by a dash in the canonical form. */
export const DASH_BEFORE = Uint8Array.from({ length: UUID_BYTES }, (_, k) => (k === 4 || k === 6 || k === 8 || k === 10 ? 1 : 0));

/** This thread's scratch for formatting: 36 ASCII bytes. */
const scratch = Buffer.alloc(UUID_CHARS) as Utf8Sliceable & { latin1Slice(start: number, end: number): string };

/**
 * Writes the canonical form (36 ASCII bytes, dashes included) of the 16 bytes at `at` of `src`
 * into `dst` at `p`; returns the position after it. The one hex loop of formatUuid and of
 * queryJson's UUID literals (json-bytes.ts).
 */
export function writeUuidAscii(src: Uint8Array, at: number, dst: Uint8Array, p: number): number {
  for (let k = 0; k < UUID_BYTES; k++) {
    if (DASH_BEFORE[k] === 1) dst[p++] = 0x2d;
    const b = src[at + k]! << 1;
    dst[p++] = HEX_ASCII[b]!;
    dst[p++] = HEX_ASCII[b + 1]!;
  }
  return p;
}

/** The canonical string of the 16 bytes at `at`. */
export function formatUuid(bytes: Uint8Array, at: number): string {
  writeUuidAscii(bytes, at, scratch, 0);
  return scratch.latin1Slice(0, UUID_CHARS);
}

/** A lowercase hex digit's value, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Packs `str` into 16 bytes at `at` when it is a canonical UUID; false (bytes at `at` left
 * partly written: the caller writes the string over them) otherwise.
 */
export function packUuid(str: string, bytes: Uint8Array, at: number): boolean {
  if (str.length !== UUID_CHARS) return false;
  let p = 0;
  for (let k = 0; k < UUID_BYTES; k++) {
    if (DASH_BEFORE[k] === 1 && str.charCodeAt(p++) !== 45) return false;
    const hi = hexDigit(str.charCodeAt(p++));
    const lo = hexDigit(str.charCodeAt(p++));
    if (hi < 0 || lo < 0) return false;
    bytes[at + k] = (hi << 4) | lo;
  }
  return true;
}

/** The string of a stored range [start, end): a packed UUID, a marked 16-byte string, or UTF-8. */
export function uuidRangeText(bytes: Utf8Sliceable, start: number, end: number): string {
  if (end - start === UUID_BYTES) return formatUuid(bytes, start);
  if (end > start && bytes[end - 1] === UTF8_MARK) end--;
  return start === end ? '' : bytes.utf8Slice(start, end);
}

/**
 * A reader of a snapshot file's column as apache-arrow decoded it: the strings of a pk or ref
 * column written by lexicons (Binary with field metadata {@link ENCODING_KEY}), else
 * `other(vector.get(i))`.
 */
export function fileColumnReader(field: arrow.Field, vector: arrow.Vector, other: (value: unknown) => unknown): (i: number) => unknown {
  if (field.metadata.get(ENCODING_KEY) !== ENCODING_UUID || !(field.type instanceof arrow.Binary)) return (i) => other(vector.get(i));
  return (i) => {
    const bytes = vector.get(i) as Uint8Array | null;
    return bytes === null ? null : uuidRangeText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Utf8Sliceable, 0, bytes.byteLength);
  };
}

/** Decoded length in UTF-8 bytes of a stored range (what the Utf8 copy of {@link UuidValues.arrowData} holds). */
function textBytes(bytes: Uint8Array, start: number, end: number): number {
  if (end - start === UUID_BYTES) return UUID_CHARS;
  return end > start && bytes[end - 1] === UTF8_MARK ? end - start - 1 : end - start;
}

export class UuidValues implements Values {
  /** What {@link arrowData} returns: strings (a decoded copy). */
  readonly type = new arrow.Utf8();
  /** What a snapshot file holds: the stored bytes as they are (field metadata {@link ENCODING_KEY}). */
  readonly fileType = new arrow.Binary();
  readonly offsets: GrowBuf;
  readonly data: GrowBuf;
  constructor(offsets: GrowBuf, data: GrowBuf) {
    this.offsets = offsets;
    this.data = data;
  }
  read(i: number): string {
    const off = this.offsets.i32(i + 1);
    const end = off[i + 1]!;
    return uuidRangeText(this.data.bytes(end) as Utf8Sliceable, off[i]!, end);
  }
  /**
   * Whether value i is `str`, without building a string: the pk index compares each candidate
   * version of a bucket against the pk looked up (a packed UUID digit by digit against its
   * lowercase hex; a stored string byte by byte when `str` is ASCII, else decoded).
   */
  equals(i: number, str: string): boolean {
    const off = this.offsets.i32(i + 1);
    const start = off[i]!;
    let end = off[i + 1]!;
    const bytes = this.data.bytes(end);
    if (end - start === UUID_BYTES) {
      if (str.length !== UUID_CHARS) return false;
      let p = 0;
      for (let k = 0; k < UUID_BYTES; k++) {
        if (DASH_BEFORE[k] === 1 && str.charCodeAt(p++) !== 45) return false;
        const b = bytes[start + k]! << 1;
        if (str.charCodeAt(p++) !== HEX_ASCII[b] || str.charCodeAt(p++) !== HEX_ASCII[b + 1]) return false;
      }
      return true;
    }
    if (end > start && bytes[end - 1] === UTF8_MARK) end--;
    const n = end - start;
    // UTF-8 takes at least one byte per UTF-16 unit, and exactly one only for ASCII.
    if (str.length > n) return false;
    if (str.length < n) return (bytes as Utf8Sliceable).utf8Slice(start, end) === str; // n > 0 here
    for (let j = 0; j < n; j++) {
      const c = str.charCodeAt(j);
      if (c >= 0x80 || c !== bytes[start + j]) return false;
    }
    return true;
  }

  write(i: number, value: unknown): void {
    const str = value as string;
    const start = this.offsets.i32(i)[i]!;
    let end = start + UUID_BYTES;
    this.data.ensure(end);
    if (!packUuid(str, this.data.bytes(end), start)) {
      const n = Buffer.byteLength(str, 'utf8');
      end = start + n + (n === UUID_BYTES ? 1 : 0);
      if (end > MAX_UTF8_BYTES) throw new LexiconsError(ErrorCode.CAPACITY, `${this.data.label}: column exceeds 2 GiB of keys (Int32 offsets)`);
      this.data.ensure(end);
      const bytes = this.data.bytes(end) as Utf8Sliceable;
      if (n > 0) bytes.utf8Write(str, start, n);
      if (n === UUID_BYTES) bytes[start + n] = UTF8_MARK;
    }
    this.offsets.ensure((i + 2) * 4);
    this.offsets.i32(i + 1)[i + 1] = end;
  }
  writeNull(i: number): void {
    writeEmptyRange(this.offsets, i);
  }
  move(from: number, to: number): void {
    moveBytes(this.offsets, this.data, from, to);
  }
  /**
   * Utf8 Arrow data of the first `length` slots: a copy (UUIDs formatted, marks dropped), not a
   * view, because Arrow users expect strings. Snapshot files take the stored bytes instead.
   */
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const off = this.offsets.i32(length);
    const bytes = this.data.bytes(off[length]!);
    const valueOffsets = new Int32Array(length + 1);
    for (let i = 0; i < length; i++) valueOffsets[i + 1] = valueOffsets[i]! + textBytes(bytes, off[i]!, off[i + 1]!);
    const out = Buffer.allocUnsafe(valueOffsets[length]!);
    for (let i = 0; i < length; i++) {
      const start = off[i]!;
      const end = off[i + 1]!;
      if (end - start === UUID_BYTES) out.write(formatUuid(bytes, start), valueOffsets[i]!, 'latin1');
      else bytes.copy(out, valueOffsets[i]!, start, start + valueOffsets[i + 1]! - valueOffsets[i]!);
    }
    return arrow.makeData({ type: this.type, length, nullBitmap, valueOffsets, data: new Uint8Array(out.buffer, out.byteOffset, out.length) });
  }
}
