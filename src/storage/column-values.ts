/**
 * @module storage/column-values
 * The value stores of a column, in Apache Arrow's buffer layout: int -> Int64, float -> Float64,
 * bool -> bit-packed, str -> Utf8 (Int32 offsets n+1 + UTF-8 bytes; pk and ref: uuid-values.ts), dictionary str ->
 * Int32 indices + an append-only Utf8 dictionary, list/set -> Int32 offsets + a child store of the
 * element type. Nulls are not stored here: they live in the column's validity {@link Bitmap}.
 *
 * These are the hot path of every read: each store is its own small class, so that a call site
 * that reads one column stays monomorphic.
 */
import * as arrow from 'apache-arrow';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { GrowBuf } from './grow-buf.js';

/**
 * Buffer's fast UTF-8 decoder and encoder (what `toString('utf8', s, e)` and `write(str, offset,
 * 'utf8')` call after their argument checks, which cost more than the copy for short strings:
 * measured 1.5 s of a 1M-row CSV load went to `Buffer#write` alone).
 */
export type Utf8Sliceable = Buffer & { utf8Slice(start: number, end: number): string; utf8Write(str: string, offset: number, length: number): number };

/** Largest byte offset an Arrow Utf8 (Int32 offsets) column can address. */
export const MAX_UTF8_BYTES = 0x7fffffff;

/** A value store without nulls (nulls live in the column's validity bitmap). */
export interface Values {
  read(i: number): unknown;
  write(i: number, value: unknown): void;
  /** Keeps slot i addressable (fixed stores write 0, variable stores an empty range). */
  writeNull(i: number): void;
  /**
   * Copies slot `from` to slot `to` < `from` (reclaim.ts compacts ascending: every slot below `to`
   * is final, and no slot at or above `from` has been written yet).
   */
  move(from: number, to: number): void;
  readonly type: arrow.DataType;
  /** Arrow Data over the first `length` slots, zero-copy. */
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data;
}

export class Bitmap {
  readonly buf: GrowBuf;

  constructor(buf: GrowBuf) {
    this.buf = buf;
  }

  get(i: number): boolean {
    const byte = i >> 3;
    return ((this.buf.u8(byte)[byte]! >> (i & 7)) & 1) === 1;
  }

  set(i: number, bit: boolean): void {
    const byte = i >> 3;
    this.buf.ensure(byte + 1);
    const u8 = this.buf.u8(byte);
    if (bit) u8[byte]! |= 1 << (i & 7);
    else u8[byte]! &= ~(1 << (i & 7));
  }

  view(length: number): Uint8Array {
    return new Uint8Array(this.buf.buffer, 0, (length + 7) >> 3);
  }

  move(from: number, to: number): void {
    this.set(to, this.get(from));
  }
}

// Int64Values and Float64Values are a deliberate pair of look-alikes: merged into one class over
// a typed-array kind, every int and float read would branch on the kind (or go through a
// polymorphic view), on the hottest path there is. They differ in the view and the conversion.
export class Int64Values implements Values {
  readonly type = new arrow.Int64();
  readonly buf: GrowBuf;
  constructor(buf: GrowBuf) {
    this.buf = buf;
  }
  read(i: number): number {
    return Number(this.buf.i64(i)[i]!);
  }
  write(i: number, value: unknown): void {
    this.buf.ensure((i + 1) * 8);
    this.buf.i64(i)[i] = BigInt(value as number);
  }
  writeNull(i: number): void {
    this.write(i, 0);
  }
  move(from: number, to: number): void {
    const i64 = this.buf.i64(from);
    i64[to] = i64[from]!;
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new BigInt64Array(this.buf.buffer, 0, length) });
  }
}

export class Float64Values implements Values {
  readonly type = new arrow.Float64();
  readonly buf: GrowBuf;
  constructor(buf: GrowBuf) {
    this.buf = buf;
  }
  read(i: number): number {
    return this.buf.f64(i)[i]!;
  }
  write(i: number, value: unknown): void {
    this.buf.ensure((i + 1) * 8);
    this.buf.f64(i)[i] = value as number;
  }
  writeNull(i: number): void {
    this.write(i, 0);
  }
  move(from: number, to: number): void {
    const f64 = this.buf.f64(from);
    f64[to] = f64[from]!;
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new Float64Array(this.buf.buffer, 0, length) });
  }
}

export class BoolValues implements Values {
  readonly type = new arrow.Bool();
  readonly bits: Bitmap;
  constructor(buf: GrowBuf) {
    this.bits = new Bitmap(buf);
  }
  read(i: number): boolean {
    return this.bits.get(i);
  }
  write(i: number, value: unknown): void {
    this.bits.set(i, value as boolean);
  }
  writeNull(i: number): void {
    this.bits.set(i, false);
  }
  move(from: number, to: number): void {
    this.bits.move(from, to);
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: this.bits.view(length) });
  }
}

/**
 * Moves the range of slot `from` of an offsets buffer to slot `to` < `from` (its start is the end
 * of slot `to - 1`, already final): `copy(src, dst, count)` moves the range's bytes or items, and
 * the end of `to` is written. Neither offset of `from` has been overwritten yet: a move writes
 * only `to + 1` <= `from`, and a slot that stays in place is not written at all.
 */
function moveRange(offsets: GrowBuf, from: number, to: number, copy: (src: number, dst: number, count: number) => void): void {
  const off = offsets.i32(from + 1);
  const start = off[from]!;
  const count = off[from + 1]! - start;
  const dst = off[to]!;
  if (count > 0 && dst !== start) copy(start, dst, count);
  off[to + 1] = dst + count;
}

/** Moves slot `from` of a byte column (offsets + bytes: Utf8, pk and ref) to slot `to` < `from`. */
export function moveBytes(offsets: GrowBuf, data: GrowBuf, from: number, to: number): void {
  // copyWithin has memmove semantics: the ranges may overlap (the destination is lower).
  moveRange(offsets, from, to, (src, dst, count) => data.bytes(src + count).copyWithin(dst, src, src + count));
}

/** Slot i of an offsets buffer as an empty range (end = start): a null string or list. */
export function writeEmptyRange(offsets: GrowBuf, i: number): void {
  offsets.ensure((i + 2) * 4);
  const off = offsets.i32(i + 1);
  off[i + 1] = off[i]!;
}

export class Utf8Values implements Values {
  readonly type = new arrow.Utf8();
  readonly offsets: GrowBuf;
  readonly data: GrowBuf;
  constructor(offsets: GrowBuf, data: GrowBuf) {
    this.offsets = offsets;
    this.data = data;
  }
  read(i: number): string {
    const off = this.offsets.i32(i + 1);
    const start = off[i]!;
    const end = off[i + 1]!;
    return start === end ? '' : (this.data.bytes(end) as Utf8Sliceable).utf8Slice(start, end);
  }
  write(i: number, value: unknown): void {
    const str = value as string;
    const start = this.offsets.i32(i)[i]!;
    const end = start + Buffer.byteLength(str, 'utf8');
    if (end > MAX_UTF8_BYTES) {
      throw new LexiconsError(ErrorCode.CAPACITY, `${this.data.label}: Utf8 column exceeds 2 GiB of text (Int32 offsets)`);
    }
    this.data.ensure(end);
    this.offsets.ensure((i + 2) * 4);
    if (end > start) (this.data.bytes(end) as Utf8Sliceable).utf8Write(str, start, end - start);
    this.offsets.i32(i + 1)[i + 1] = end;
  }
  writeNull(i: number): void {
    writeEmptyRange(this.offsets, i);
  }
  move(from: number, to: number): void {
    moveBytes(this.offsets, this.data, from, to);
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const valueOffsets = new Int32Array(this.offsets.buffer, 0, length + 1);
    const data = new Uint8Array(this.data.buffer, 0, valueOffsets[length]!);
    return arrow.makeData({ type: this.type, length, nullBitmap, valueOffsets, data });
  }
}

/**
 * Dictionary-encoded strings: Int32 indices per slot + an append-only Utf8 dictionary whose entry
 * count lives in the control block. Each thread derives its value list (and, when it writes, its
 * value -> index map) lazily from the shared dictionary.
 */
export class DictValues implements Values {
  readonly type: arrow.Dictionary<arrow.Utf8, arrow.Int32>;
  readonly buf: GrowBuf;
  readonly dict: Utf8Values;
  readonly #count: Int32Array;
  readonly #countSlot: number;
  readonly #values: string[] = [];
  #map: Map<string, number> | undefined;

  constructor(indices: GrowBuf, dict: Utf8Values, control: Int32Array, countSlot: number, id: number) {
    this.buf = indices;
    this.dict = dict;
    this.#count = control;
    this.#countSlot = countSlot;
    this.type = new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32(), id);
  }
  #refresh(): void {
    const count = Atomics.load(this.#count, this.#countSlot);
    for (let k = this.#values.length; k < count; k++) {
      const value = this.dict.read(k);
      this.#values.push(value);
      this.#map?.set(value, k);
    }
  }
  /** Entries of the shared dictionary (all threads). */
  entries(): number {
    return Atomics.load(this.#count, this.#countSlot);
  }
  /** Publishes the entry count of a dictionary whose bytes were loaded directly (start-up load, before any reader). */
  setEntries(count: number): void {
    Atomics.store(this.#count, this.#countSlot, count);
  }
  read(i: number): string {
    const idx = this.buf.i32(i)[i]!;
    if (idx >= this.#values.length) this.#refresh();
    return this.#values[idx]!;
  }
  write(i: number, value: unknown): void {
    const str = value as string;
    this.#refresh();
    if (this.#map === undefined) this.#map = new Map(this.#values.map((v, k) => [v, k]));
    let idx = this.#map.get(str);
    if (idx === undefined) {
      idx = this.#values.length;
      this.dict.write(idx, str);
      Atomics.store(this.#count, this.#countSlot, idx + 1); // entry complete before it is counted
      this.#values.push(str);
      this.#map.set(str, idx);
    }
    this.buf.ensure((i + 1) * 4);
    this.buf.i32(i)[i] = idx;
  }
  writeNull(i: number): void {
    this.buf.ensure((i + 1) * 4);
    this.buf.i32(i)[i] = 0;
  }
  move(from: number, to: number): void {
    const i32 = this.buf.i32(from);
    i32[to] = i32[from]!;
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const count = Atomics.load(this.#count, this.#countSlot);
    const dictionary = arrow.makeVector(this.dict.arrowData(count) as arrow.Data<arrow.Utf8>);
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new Int32Array(this.buf.buffer, 0, length), dictionary });
  }
}

export class ListValues implements Values {
  readonly type: arrow.List;
  readonly offsets: GrowBuf;
  readonly child: Values;
  constructor(offsets: GrowBuf, child: Values) {
    this.offsets = offsets;
    this.child = child;
    this.type = new arrow.List(new arrow.Field('item', child.type, false));
  }
  read(i: number): unknown[] {
    const off = this.offsets.i32(i + 1);
    const start = off[i]!;
    const end = off[i + 1]!;
    const out = new Array<unknown>(end - start);
    for (let j = start; j < end; j++) out[j - start] = this.child.read(j);
    return out;
  }
  write(i: number, value: unknown): void {
    const items = value as unknown[];
    const start = this.offsets.i32(i)[i]!;
    if (start + items.length > MAX_UTF8_BYTES) throw new LexiconsError(ErrorCode.CAPACITY, `${this.offsets.label}: list column exceeds 2^31 elements`);
    this.offsets.ensure((i + 2) * 4);
    for (let j = 0; j < items.length; j++) this.child.write(start + j, items[j]);
    this.offsets.i32(i + 1)[i + 1] = start + items.length;
  }
  writeNull(i: number): void {
    writeEmptyRange(this.offsets, i);
  }
  move(from: number, to: number): void {
    // Items ascending: each item move keeps the child's own ascending order.
    moveRange(this.offsets, from, to, (src, dst, count) => {
      for (let j = 0; j < count; j++) this.child.move(src + j, dst + j);
    });
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const valueOffsets = new Int32Array(this.offsets.buffer, 0, length + 1);
    const child = this.child.arrowData(valueOffsets[length]!);
    return arrow.makeData({ type: this.type, length, nullBitmap, valueOffsets, child });
  }
}
