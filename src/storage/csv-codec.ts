/**
 * @module storage/csv-codec
 * The CSV codec of the data folder: cells and rows encoded and decoded per field type, and the
 * header plan (which column is which field). The format is described in docs/csv-format.md; in
 * short:
 *
 * - an empty unquoted cell is null, a quoted empty cell `""` is the empty string;
 * - bool is `True`/`False` (loads true/false/1/0 too), int and float are decimal text (float in
 *   JavaScript's shortest round-trip form, `-0` kept), ref is the pk string;
 * - list/set is a JSON array (`["a","b"]`); Python reprs (`['a', 'b']`, `{'a'}`, `set()`) written
 *   by the original pandas lexicons load too, through python-literal.ts (never eval).
 *
 * Errors carry no location here; {@link decodeRecord} adds file, line and column (and csv.ts does
 * for what the parser finds).
 */
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { parseLiteral } from './python-literal.js';
import { isScalar, type FieldSchema, type ScalarKind, type TableSchema } from './schema.js';

/** One CSV cell: text, or null for an empty unquoted cell. */
export type Cell = string | null;

/** A CSV error (a file that does not load), keeping what caused it. */
export function csvError(message: string, cause?: unknown): LexiconsError {
  return new LexiconsError(ErrorCode.CSV, message, cause === undefined ? undefined : { cause });
}

function show(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

// ---------------------------------------------------------------------------------------------
// Scalars

/** Shortest text that parses back to exactly `n` (keeps the sign of zero). */
export function formatFloat(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n);
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLS: ReadonlyMap<string, boolean> = new Map([
  ['True', true], ['False', false], ['true', true], ['false', false], ['TRUE', true], ['FALSE', false],
  ['1', true], ['0', false], ['1.0', true], ['0.0', false],
]);

function decodeNumber(kind: 'int' | 'float', text: string): number {
  if (!NUMBER.test(text)) throw csvError(`expected ${kind === 'int' ? 'an int' : 'a float'}, got ${show(text)}`);
  const n = Number(text);
  if (kind === 'int' && !Number.isSafeInteger(n)) {
    // pandas writes an int column holding NaN as floats: `3.0` is accepted, `3.5` is not.
    throw csvError(`expected an int (a safe integer), got ${show(text)}`);
  }
  if (!Number.isFinite(n)) throw csvError(`expected a finite float, got ${show(text)}`);
  return n;
}

function decodeScalar(kind: ScalarKind, text: string): string | number | boolean {
  switch (kind) {
    case 'str':
      return text;
    case 'int':
    case 'float':
      return decodeNumber(kind, text);
    case 'bool': {
      const b = BOOLS.get(text);
      if (b === undefined) throw csvError(`expected a bool (True or False), got ${show(text)}`);
      return b;
    }
  }
}

function encodeElement(kind: ScalarKind, v: unknown): string {
  switch (kind) {
    case 'str':
      return JSON.stringify(v);
    case 'float':
      return formatFloat(v as number);
    default:
      return String(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Collections

/**
 * Decodes a list/set cell: a JSON array first (the format this module writes), else a Python
 * literal (`['a', 'b']`, `{1, 2}`, `set()`, `(True,)`) as pandas wrote them.
 */
export function decodeCollection(kind: 'list' | 'set', element: ScalarKind, text: string): unknown[] {
  let items: unknown;
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      items = JSON.parse(t);
    } catch {
      items = undefined;
    }
  }
  if (!Array.isArray(items)) {
    try {
      items = parseLiteral(t);
    } catch (err) {
      throw csvError(`expected a ${kind} of ${element} (a JSON array or a Python literal), got ${show(text)}: ${messageOf(err)}`);
    }
  }
  if (!Array.isArray(items)) throw csvError(`expected a ${kind} of ${element}, got ${show(text)}`);
  for (const v of items) {
    if (!isScalar(element, v)) throw csvError(`expected a ${kind} of ${element}, found element ${v === null ? 'None' : show(String(v))} in ${show(text)}`);
  }
  return kind === 'set' ? [...new Set(items)] : items;
}

// ---------------------------------------------------------------------------------------------
// Cells

/** Encodes one field value as a cell. Values are assumed valid for the field (they come from the store). */
export function encodeCell(f: FieldSchema, value: unknown): Cell {
  if (value === null || value === undefined) return null;
  switch (f.kind) {
    case 'str':
    case 'ref':
      return value as string;
    case 'int':
      return String(value);
    case 'float':
      return formatFloat(value as number);
    case 'bool':
      return value ? 'True' : 'False';
    case 'list':
    case 'set': {
      const el = f.element ?? 'str';
      let out = '[';
      let first = true;
      for (const v of value as Iterable<unknown>) {
        out += first ? encodeElement(el, v) : `,${encodeElement(el, v)}`;
        first = false;
      }
      return `${out}]`;
    }
  }
}

/**
 * Decodes one cell for a field. An empty unquoted cell is null when the field is nullable;
 * otherwise it is `''` for str (pandas writes the empty string that way) and the field's default
 * for other kinds (as the original's migrate filled nulls); a non-nullable field without a
 * usable default rejects it.
 */
export function decodeCell(f: FieldSchema, cell: Cell): unknown {
  if (cell === null) {
    if (f.nullable) return null;
    if (f.kind === 'str') return '';
    const dflt = f.makeDefault();
    if (dflt === null || dflt === undefined) throw csvError(`empty cell (null) in a field that is not nullable`);
    return dflt;
  }
  switch (f.kind) {
    case 'str':
    case 'ref':
      return cell;
    case 'int':
    case 'float':
    case 'bool':
      return decodeScalar(f.kind, cell);
    case 'list':
    case 'set':
      return decodeCollection(f.kind, f.element ?? 'str', cell);
  }
}

// ---------------------------------------------------------------------------------------------
// Rows and headers

/** The header this module writes: `pk`, then the fields in declaration order. */
export function headerOf(table: TableSchema): string[] {
  return ['pk', ...table.fields.map((f) => f.name)];
}

/** Encodes a store row (`pk` + fields) as cells in {@link headerOf} order. */
export function encodeRow(table: TableSchema, row: Record<string, unknown>): Cell[] {
  const cells: Cell[] = [row.pk as string];
  for (const f of table.fields) cells.push(encodeCell(f, row[f.name]));
  return cells;
}

/** Which field each column of a file holds, planned once from its header. */
export interface HeaderPlan {
  readonly file: string;
  readonly table: TableSchema;
  readonly header: readonly string[];
  /** Per column: the field, `'pk'`, or null for a column the Model does not have. */
  readonly columns: ReadonlyArray<FieldSchema | 'pk' | null>;
  readonly pkIndex: number;
  /** Model fields with no column in the file (they get their default). */
  readonly missing: readonly FieldSchema[];
  /** Columns the Model no longer has, with their index. */
  readonly extra: ReadonlyArray<{ name: string; index: number }>;
}

/** Checks a header row and plans the columns; throws a CSV error naming file and column on a bad header. */
export function planHeader(file: string, table: TableSchema, header: readonly Cell[]): HeaderPlan {
  const seen = new Set<string>();
  const names: string[] = [];
  header.forEach((name, i) => {
    if (name === null || name.trim() === '') throw csvError(`${file}, line 1 (header), column ${i + 1}: empty column name`);
    if (seen.has(name)) throw csvError(`${file}, line 1 (header), column ${name}: duplicate column name`);
    seen.add(name);
    names.push(name);
  });
  const pkIndex = names.indexOf('pk');
  if (pkIndex < 0) throw csvError(`${file}, line 1 (header): no pk column (header is ${names.map((n) => JSON.stringify(n)).join(',')})`);
  const columns = names.map((n) => (n === 'pk' ? 'pk' : table.byName.get(n) ?? null));
  const extra = names.flatMap((name, index) => (columns[index] === null ? [{ name, index }] : []));
  const missing = table.fields.filter((f) => !seen.has(f.name));
  return { file, table, header: names, columns, pkIndex, missing, extra };
}

/**
 * Decodes one data record into a store row (`pk` + every field; missing fields get defaults).
 * Throws a CSV error naming file, line and column.
 */
export function decodeRecord(plan: HeaderPlan, cells: readonly Cell[], line: number): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  const { columns } = plan;
  for (let i = 0; i < columns.length; i++) {
    const col = columns[i];
    const cell = cells[i] ?? null;
    if (col === 'pk') {
      if (cell === null || cell === '') throw csvError(`${plan.file}, line ${line}, column pk: empty pk`);
      row.pk = cell;
    } else if (col) {
      try {
        row[col.name] = decodeCell(col, cell);
      } catch (err) {
        throw csvError(`${plan.file}, line ${line}, column ${col.name}: ${messageOf(err)}`, err);
      }
    }
  }
  for (const f of plan.missing) row[f.name] = f.makeDefault();
  return row;
}
