/**
 * @module storage/columns
 * Columns in Apache Arrow's buffer layout over growable buffers.
 *
 * A {@link GrowBuf} wraps one growable SharedArrayBuffer (or, for gathered Arrow copies, one
 * resizable ArrayBuffer). `grow()` in one thread is seen by all (the byte length is shared); each
 * thread keeps fixed-length typed views and re-creates them when an index falls past their end.
 *
 * A {@link Column} is a validity bitmap (1 bit per slot, LSB order, as Arrow) plus a value store:
 * int -> Int64, float -> Float64, bool -> bit-packed, str/ref/pk -> Utf8 (Int32 offsets n+1 +
 * UTF-8 bytes), dictionary str -> Int32 indices + append-only Utf8 dictionary, list/set -> Int32
 * offsets + a child store of the element type.
 *
 * Only the thread holding the commit lock writes, and only slots that are not yet published
 * (>= the table's row count), so no reader ever reads a byte while it is being written, except
 * bitmap bytes shared with published neighbours (whose published bits never change).
 */
import * as arrow from 'apache-arrow';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ScalarKind } from './schema.js';

/** The ES2024 growable/resizable buffer surface (the project's lib is ES2023). */
interface Growable {
  readonly byteLength: number;
  readonly maxByteLength: number;
  grow?(bytes: number): void;
  resize?(bytes: number): void;
}

const GrowableSAB = SharedArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => SharedArrayBuffer;
const ResizableAB = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ArrayBuffer;

/** Buffer's fast UTF-8 decoder (what `toString('utf8', s, e)` calls after argument checks). */
type Utf8Sliceable = Buffer & { utf8Slice(start: number, end: number): string };

/** Largest byte offset an Arrow Utf8 (Int32 offsets) column can address. */
export const MAX_UTF8_BYTES = 0x7fffffff;

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** One growable buffer with a label for CAPACITY errors ("Table.column values"). */
export class GrowBuf {
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  readonly label: string;
  #bytes: Buffer | undefined;

  constructor(buffer: SharedArrayBuffer | ArrayBuffer, label: string) {
    this.buffer = buffer;
    this.label = label;
  }

  static allocate(initialBytes: number, maxBytes: number, label: string, shared: boolean): GrowBuf {
    const max = Math.max(8, Math.floor(maxBytes / 8) * 8);
    const initial = Math.min(max, Math.max(8, align8(initialBytes)));
    const buffer = shared ? new GrowableSAB(initial, { maxByteLength: max }) : new ResizableAB(initial, { maxByteLength: max });
    return new GrowBuf(buffer, label);
  }

  get byteLength(): number {
    return this.buffer.byteLength;
  }

  /** Grows (geometrically) so that at least `bytes` bytes exist; CAPACITY error past maxByteLength. */
  ensure(bytes: number): void {
    const b = this.buffer as unknown as Growable;
    const current = b.byteLength;
    if (bytes <= current) return;
    const max = b.maxByteLength;
    if (bytes > max) {
      throw new LexiconsError(ErrorCode.CAPACITY, `${this.label}: buffer is full at ${max} bytes and cannot grow to ${bytes} bytes (raise maxBytesPerBuffer)`);
    }
    const next = Math.min(max, Math.max(align8(bytes), align8(current * 2)));
    if (b.grow) b.grow(next);
    else b.resize!(next);
  }

  // Fixed-length typed views, re-created when an index falls past them (after growth). Fixed-length
  // views over a growable SharedArrayBuffer are as fast as plain ones; length-tracking views pay
  // an atomic length load on every access (measured 2-3x slower in Node 20).
  #f64: Float64Array | undefined;
  #i64: BigInt64Array | undefined;
  #i32: Int32Array | undefined;
  #u8: Uint8Array | undefined;

  /** A Float64 view covering element i (if the buffer holds it). */
  f64(i: number): Float64Array {
    const v = this.#f64;
    if (v !== undefined && i < v.length) return v;
    return (this.#f64 = new Float64Array(this.buffer, 0, this.buffer.byteLength >> 3));
  }

  i64(i: number): BigInt64Array {
    const v = this.#i64;
    if (v !== undefined && i < v.length) return v;
    return (this.#i64 = new BigInt64Array(this.buffer, 0, this.buffer.byteLength >> 3));
  }

  i32(i: number): Int32Array {
    const v = this.#i32;
    if (v !== undefined && i < v.length) return v;
    return (this.#i32 = new Int32Array(this.buffer, 0, this.buffer.byteLength >> 2));
  }

  u8(i: number): Uint8Array {
    const v = this.#u8;
    if (v !== undefined && i < v.length) return v;
    return (this.#u8 = new Uint8Array(this.buffer, 0, this.buffer.byteLength));
  }

  /** A Buffer view covering at least `end` bytes (re-created after growth; Buffers do not track length). */
  bytes(end: number): Buffer {
    let view = this.#bytes;
    if (view === undefined || view.length < end) {
      view = Buffer.from(this.buffer, 0, this.buffer.byteLength);
      this.#bytes = view;
    }
    return view;
  }
}

/** Hands out the buffers of a table in a fixed order: fresh ones (create) or received ones (attach). */
export type Allocator = (label: string, initialBytes: number) => GrowBuf;

/** A value store without nulls (nulls live in the column's validity bitmap). */
export interface Values {
  read(i: number): unknown;
  write(i: number, value: unknown): void;
  /** Keeps slot i addressable (fixed stores write 0, variable stores an empty range). */
  writeNull(i: number): void;
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
}

class Int64Values implements Values {
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
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new BigInt64Array(this.buf.buffer, 0, length) });
  }
}

class Float64Values implements Values {
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
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new Float64Array(this.buf.buffer, 0, length) });
  }
}

class BoolValues implements Values {
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
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    return arrow.makeData({ type: this.type, length, nullBitmap, data: this.bits.view(length) });
  }
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
    if (end > start) this.data.bytes(end).write(str, start, 'utf8');
    this.offsets.i32(i + 1)[i + 1] = end;
  }
  writeNull(i: number): void {
    this.offsets.ensure((i + 2) * 4);
    const off = this.offsets.i32(i + 1);
    off[i + 1] = off[i]!;
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
class DictValues implements Values {
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
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const count = Atomics.load(this.#count, this.#countSlot);
    const dictionary = arrow.makeVector(this.dict.arrowData(count) as arrow.Data<arrow.Utf8>);
    return arrow.makeData({ type: this.type, length, nullBitmap, data: new Int32Array(this.buf.buffer, 0, length), dictionary });
  }
}

class ListValues implements Values {
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
    this.offsets.ensure((i + 2) * 4);
    const off = this.offsets.i32(i + 1);
    off[i + 1] = off[i]!;
  }
  arrowData(length: number, nullBitmap?: Uint8Array): arrow.Data {
    const valueOffsets = new Int32Array(this.offsets.buffer, 0, length + 1);
    const child = this.child.arrowData(valueOffsets[length]!);
    return arrow.makeData({ type: this.type, length, nullBitmap, valueOffsets, child });
  }
}

/** Builds the value store of a scalar kind (list children and plain fields). */
function scalarValues(kind: ScalarKind, alloc: Allocator, label: string, rows: number): Values {
  switch (kind) {
    case 'int':
      return new Int64Values(alloc(`${label} values`, rows * 8));
    case 'float':
      return new Float64Values(alloc(`${label} values`, rows * 8));
    case 'bool':
      return new BoolValues(alloc(`${label} values`, rows / 8));
    case 'str':
      return new Utf8Values(alloc(`${label} offsets`, (rows + 1) * 4), alloc(`${label} bytes`, rows * 16));
  }
}

export interface ColumnSpec {
  kind: 'str' | 'int' | 'float' | 'bool' | 'list' | 'set' | 'ref' | 'pk';
  element?: ScalarKind | undefined;
  dictionary?: { control: Int32Array; countSlot: number; id: number } | undefined;
}

/** A nullable column: validity bitmap + values. */
export class Column {
  readonly validity: Bitmap;
  readonly values: Values;

  constructor(spec: ColumnSpec, alloc: Allocator, label: string, rows: number) {
    this.validity = new Bitmap(alloc(`${label} validity`, rows / 8));
    if (spec.dictionary) {
      const d = spec.dictionary;
      const indices = alloc(`${label} indices`, rows * 4);
      const dict = new Utf8Values(alloc(`${label} dictionary offsets`, 64 * 4), alloc(`${label} dictionary bytes`, 64 * 16));
      this.values = new DictValues(indices, dict, d.control, d.countSlot, d.id);
    } else if (spec.kind === 'list' || spec.kind === 'set') {
      const offsets = alloc(`${label} offsets`, (rows + 1) * 4);
      this.values = new ListValues(offsets, scalarValues(spec.element ?? 'str', alloc, `${label} items`, rows * 2));
    } else {
      this.values = scalarValues(spec.kind === 'ref' || spec.kind === 'pk' ? 'str' : spec.kind, alloc, label, rows);
    }
  }

  read(i: number): unknown {
    return this.validity.get(i) ? this.values.read(i) : null;
  }

  write(i: number, value: unknown): void {
    if (value === null || value === undefined) {
      this.validity.set(i, false);
      this.values.writeNull(i);
    } else {
      this.values.write(i, value);
      this.validity.set(i, true);
    }
  }

  arrowData(length: number): arrow.Data {
    return this.values.arrowData(length, this.validity.view(length));
  }
}
