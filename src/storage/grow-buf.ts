/**
 * @module storage/grow-buf
 * One growable buffer of a column: a growable SharedArrayBuffer (or, for gathered Arrow copies, a
 * resizable ArrayBuffer). `grow()` in one thread is seen by all (the byte length is shared); each
 * thread keeps fixed-length typed views and re-creates them when an index falls past their end.
 */
import { ErrorCode, LexiconsError } from '../errors.js';

/** The ES2024 growable/resizable buffer surface (the project's lib is ES2023). */
interface Growable {
  readonly byteLength: number;
  readonly maxByteLength: number;
  grow?(bytes: number): void;
  resize?(bytes: number): void;
}

const GrowableSAB = SharedArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => SharedArrayBuffer;
const ResizableAB = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ArrayBuffer;

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
  // The four getters below are a deliberate set of look-alikes: every column read goes through one
  // of them, and one generic getter over a typed-array constructor would make that call site
  // polymorphic (and need a cast per read). Each stays monomorphic in its own element type.
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
