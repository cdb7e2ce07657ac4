/**
 * @module storage/columns
 * A column of a table: a validity bitmap (1 bit per slot, LSB order, as Arrow) plus the value
 * store of its field kind (column-values.ts; pk and ref: uuid-values.ts), over growable buffers
 * (grow-buf.ts).
 *
 * Only the thread holding the commit lock writes, and only slots that are not yet published
 * (>= the table's row count), so no reader ever reads a byte while it is being written, except
 * bitmap bytes shared with published neighbours (whose published bits never change).
 */
import type * as arrow from 'apache-arrow';
import { Bitmap, BoolValues, DictValues, Float64Values, Int64Values, ListValues, Utf8Values, type Values } from './column-values.js';
import type { Allocator } from './grow-buf.js';
import type { ScalarKind } from './schema.js';
import { UuidValues } from './uuid-values.js';

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
    } else if (spec.kind === 'ref' || spec.kind === 'pk') {
      this.values = new UuidValues(alloc(`${label} offsets`, (rows + 1) * 4), alloc(`${label} bytes`, rows * 16));
    } else {
      this.values = scalarValues(spec.kind, alloc, label, rows);
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

  /** Copies slot `from` to slot `to` < `from` (compaction, ascending: see Values.move). */
  move(from: number, to: number): void {
    this.validity.move(from, to);
    this.values.move(from, to);
  }

  arrowData(length: number): arrow.Data {
    return this.values.arrowData(length, this.validity.view(length));
  }
}
