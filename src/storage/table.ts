/**
 * @module storage/table
 * One table in shared memory: append-only row versions, compacted when no thread reads
 * (reclaim.ts).
 *
 * Every slot is an immutable row version while anyone can read it. Hidden per-slot columns (excluded from Arrow views):
 * - `begin` (Float64): commit id that created the version; written before the slot is published.
 * - `next`  (Int32): slot of the version that superseded it (or of its tombstone), -1 while live;
 *   the only word ever modified after publication, always with Atomics.
 * - `flags` (Uint8): 1 = tombstone (a deletion marker carrying only the pk).
 * Then the pk (uuid-values.ts: a UUID in 16 bytes, any other string as UTF-8) and one {@link Column} per field, in declaration order.
 */
import type { TableSchema } from './schema.js';
import { Column } from './columns.js';
import type { Allocator, GrowBuf } from './grow-buf.js';
import { ControlBlock, i32DictCount } from './layout.js';
import { UuidValues } from './uuid-values.js';

export const TOMBSTONE = 1;

export class SharedTable {
  readonly schema: TableSchema;
  readonly id: number;
  readonly control: ControlBlock;
  readonly buffers: GrowBuf[] = [];
  readonly beginBuf: GrowBuf;
  readonly nextBuf: GrowBuf;
  readonly flagsBuf: GrowBuf;
  readonly pk: UuidValues;
  readonly columns: Column[];
  readonly byName: Map<string, Column>;

  /**
   * @param dictBase index of this table's first dictionary column among all dictionary columns
   *   of the schema (dictionary entry counts live in the control block).
   */
  constructor(schema: TableSchema, id: number, control: ControlBlock, alloc: Allocator, rows: number, dictBase: number) {
    this.schema = schema;
    this.id = id;
    this.control = control;
    const track: Allocator = (label, bytes) => {
      const buf = alloc(label, bytes);
      this.buffers.push(buf);
      return buf;
    };
    const t = schema.name;
    this.beginBuf = track(`${t}.(begin)`, rows * 8);
    this.nextBuf = track(`${t}.(next)`, rows * 4);
    this.flagsBuf = track(`${t}.(flags)`, rows);
    this.pk = new UuidValues(track(`${t}.pk offsets`, (rows + 1) * 4), track(`${t}.pk bytes`, rows * 16));
    let dict = dictBase;
    this.columns = schema.fields.map((f) => {
      const dictionary = f.dictionary ? { control: control.i32, countSlot: i32DictCount(control.tableCount, dict), id: dict++ } : undefined;
      return new Column({ kind: f.kind, element: f.element, dictionary }, track, `${t}.${f.name}`, rows);
    });
    this.byName = new Map(schema.fields.map((f, k) => [f.name, this.columns[k]!]));
  }

  /** Published version slots (Atomics.load; read the commit id first). */
  rowCount(): number {
    return this.control.rowCount(this.id);
  }

  /** Commit id that created version v. */
  beginOf(v: number): number {
    return this.beginBuf.f64(v)[v]!;
  }

  /** Slot superseding version v, or -1 (Atomics: the one word mutated after publication). */
  nextOf(v: number): number {
    return Atomics.load(this.nextBuf.i32(v), v);
  }

  setNext(v: number, n: number): void {
    Atomics.store(this.nextBuf.i32(v), v, n);
  }

  isTombstone(v: number): boolean {
    return this.flagsBuf.u8(v)[v] === TOMBSTONE;
  }

  /** Writes `begin` of the unpublished slots [from, to). */
  setBegin(from: number, to: number, commitId: number): void {
    this.beginBuf.f64(to - 1).fill(commitId, from, to);
  }

  /** Whether version v is the live version of its row at snapshot s. */
  isVisible(v: number, s: number): boolean {
    const begin = this.beginBuf.f64(v);
    if (begin[v]! > s) return false;
    const n = Atomics.load(this.nextBuf.i32(v), v);
    if (n !== -1 && this.beginOf(n) <= s) return false;
    return this.flagsBuf.u8(v)[v] === 0;
  }

  readPk(v: number): string {
    return this.pk.read(v);
  }

  /** A plain object of the version's pk and fields (pk first, then declaration order). */
  readRow(v: number): { pk: string } & Record<string, unknown> {
    const row: { pk: string } & Record<string, unknown> = { pk: this.pk.read(v) };
    const fields = this.schema.fields;
    for (let k = 0; k < fields.length; k++) row[fields[k]!.name] = this.columns[k]!.read(v);
    return row;
  }

  /**
   * Writes an unpublished version at `slot` (data, next = -1, flags; not `begin`). Grows buffers as
   * needed; a CAPACITY error leaves nothing published.
   */
  writeVersion(slot: number, pk: string, values: Record<string, unknown> | null): void {
    this.beginBuf.ensure((slot + 1) * 8);
    this.nextBuf.ensure((slot + 1) * 4);
    this.flagsBuf.ensure(slot + 1);
    this.pk.write(slot, pk);
    const fields = this.schema.fields;
    for (let k = 0; k < fields.length; k++) this.columns[k]!.write(slot, values === null ? null : values[fields[k]!.name]);
    this.flagsBuf.u8(slot)[slot] = values === null ? TOMBSTONE : 0;
    this.setNext(slot, -1);
  }

  /**
   * Copies live version `from` to slot `to` < `from` (reclaim.ts, with no reader anywhere):
   * `begin`, the pk and every field; `next` = -1 and no tombstone flag (only live versions move).
   */
  moveVersion(from: number, to: number): void {
    this.beginBuf.f64(from)[to] = this.beginOf(from);
    this.setNext(to, -1);
    this.flagsBuf.u8(from)[to] = 0;
    this.pk.move(from, to);
    for (const column of this.columns) column.move(from, to);
  }

  /** Total bytes of the shared buffers (allocated, not only used). */
  bytes(): number {
    let total = 0;
    for (const b of this.buffers) total += b.byteLength;
    return total;
  }
}
