/**
 * @module storage/csv
 * The CSV codec of the data folder: cells and rows encoded and decoded per field type, the
 * header plan (which column is which field), and streaming read/write on top of csv-parse and
 * csv-stringify. The format is described in docs/csv-format.md; in short:
 *
 * - an empty unquoted cell is null, a quoted empty cell `""` is the empty string;
 * - bool is `True`/`False` (loads true/false/1/0 too), int and float are decimal text (float in
 *   JavaScript's shortest round-trip form, `-0` kept), ref is the pk string;
 * - list/set is a JSON array (`["a","b"]`); Python reprs (`['a', 'b']`, `{'a'}`, `set()`) written
 *   by the original pandas lexicons load too, through a small literal parser (never eval).
 *
 * Errors carry no location here; {@link decodeRecord} and {@link readCsvFile} add file, line
 * and column.
 */
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { Parser, type CsvError } from 'csv-parse';
import { isUtf8 } from 'node:buffer';
import { stringify } from 'csv-stringify/sync';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { isScalar, type FieldSchema, type ScalarKind, type TableSchema } from './schema.js';

/** One CSV cell: text, or null for an empty unquoted cell. */
export type Cell = string | null;

function csvError(message: string, cause?: unknown): LexiconsError {
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
// Python literals (no eval): list/set/tuple of str, int, float, bool, None, as Python's repr()
// writes them. pandas to_csv wrote list and set cells this way.

const PY_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\', "'": "'", '"': '"', n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '',
};

/** Parses a Python list/set/tuple literal of scalars; throws with the offset of the problem. */
export function parseLiteral(text: string): unknown[] {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at offset ${i}`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    const q = text[i++]!;
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i++]!;
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[i++] ?? fail('unterminated escape');
      const simple = PY_ESCAPES[e];
      if (simple !== undefined) out += simple;
      else if (e === 'x' || e === 'u' || e === 'U') {
        const len = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = text.slice(i, i + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) fail(`bad \\${e} escape`);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) fail('code point out of range');
        out += String.fromCodePoint(cp);
        i += len;
      } else if (e >= '0' && e <= '7') {
        let oct = e;
        while (oct.length < 3 && text[i]! >= '0' && text[i]! <= '7') oct += text[i++];
        out += String.fromCodePoint(parseInt(oct, 8));
      } else out += `\\${e}`; // Python keeps unknown escapes literally
    }
  };
  const scalar = (): unknown => {
    const c = text[i];
    if (c === "'" || c === '"') return str();
    if ((c === 'u' || c === 'U') && (text[i + 1] === "'" || text[i + 1] === '"')) {
      i++;
      return str();
    }
    const m = /^(?:True|False|None|[+-]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (!m) return fail(`unexpected ${JSON.stringify(text.slice(i, i + 10))}`);
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replaceAll('_', ''));
  };
  ws();
  if (text.startsWith('set()', i)) {
    i += 5;
    ws();
    if (i < text.length) fail('trailing text');
    return [];
  }
  const open = text[i];
  const close = open === '[' ? ']' : open === '{' ? '}' : open === '(' ? ')' : fail('expected [, { or (');
  i++;
  const items: unknown[] = [];
  ws();
  while (text[i] !== close) {
    items.push(scalar());
    ws();
    if (text[i] === ',') {
      i++;
      ws();
    } else if (text[i] !== close) fail(`expected , or ${close}`);
  }
  i++;
  ws();
  if (i < text.length) fail('trailing text');
  if (open === '{' && items.length === 0) fail('{} is a dict, not a set');
  return items;
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

// ---------------------------------------------------------------------------------------------
// Streaming

const STRINGIFY_OPTIONS = {
  // Only a real empty string is quoted; null/undefined become an empty unquoted cell.
  quoted_match: /^$/,
  record_delimiter: 'unix',
  eof: true,
} as const;

/** Formats records (arrays of cells) as CSV text with csv-stringify; used in batches. */
export function formatRecords(records: readonly (readonly Cell[])[]): string {
  return stringify(records as Cell[][], STRINGIFY_OPTIONS);
}

/**
 * Strict UTF-8 check ahead of csv-parse (which would turn invalid bytes into U+FFFD, and a later
 * save would write that back, altering the data). Bytes pass through unchanged; a character split
 * across two chunks is carried over to the next one.
 */
class Utf8Check extends Transform {
  #carry: Buffer = Buffer.alloc(0);
  #offset = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    let end = buf.length;
    let i = end - 1;
    while (i >= 0 && end - i < 4 && (buf[i]! & 0xc0) === 0x80) i--; // continuation bytes
    if (i >= 0) {
      const lead = buf[i]!;
      const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (end - i < need) end = i; // incomplete last character: keep it for the next chunk
    }
    const body = buf.subarray(0, end);
    if (!isUtf8(body)) {
      done(csvError(`not valid UTF-8 (within bytes ${this.#offset}–${this.#offset + body.length})`));
      return;
    }
    this.#offset += body.length;
    this.#carry = Buffer.from(buf.subarray(end));
    done(null, body);
  }
  override _flush(done: TransformCallback): void {
    done(this.#carry.length > 0 ? csvError(`not valid UTF-8 (truncated character at byte ${this.#offset})`) : null);
  }
}

/**
 * Which empty cells of a record were quoted (`""`, the empty string) rather than empty (null).
 * csv-parse reports quoting per field only through its `cast` context, which costs ~20 µs per
 * field; instead the record's raw text is scanned, and only for records that have an empty cell
 * and a quote character at all.
 */
function nullifyEmpty(cells: Cell[], raw: string): void {
  let hasEmpty = false;
  for (const c of cells) if (c === '') hasEmpty = true;
  if (!hasEmpty) return;
  if (!raw.includes('"')) {
    for (let k = 0; k < cells.length; k++) if (cells[k] === '') cells[k] = null;
    return;
  }
  let pos = 0;
  for (let k = 0; k < cells.length; k++) {
    if (raw.charCodeAt(pos) === 34 /* " */) {
      // Quoted: skip to the closing quote ("" inside is an escaped quote).
      pos++;
      for (;;) {
        const q = raw.indexOf('"', pos);
        if (q < 0) return; // cannot happen for a record csv-parse accepted
        if (raw.charCodeAt(q + 1) === 34) pos = q + 2;
        else {
          pos = q + 1;
          break;
        }
      }
    } else if (cells[k] === '') cells[k] = null;
    const comma = raw.indexOf(',', pos);
    if (comma < 0) break;
    pos = comma + 1;
  }
}

function countNewlines(cells: readonly Cell[]): number {
  let n = 0;
  for (const c of cells) {
    if (c === null) continue;
    for (let i = c.indexOf('\n'); i >= 0; i = c.indexOf('\n', i + 1)) n++;
  }
  return n;
}

/**
 * Receives each record of a file in order: its cells (null for an empty unquoted cell) and the
 * line it starts on (1-based; the header is line 1). Called synchronously; return `false` to
 * stop reading; a throw stops reading and rejects {@link readCsvFile} with that error.
 */
export type RecordHandler = (cells: Cell[], line: number) => void | boolean;

/**
 * Streams a CSV file through csv-parse (1 MiB reads) and hands every record to `onRecord`.
 * Strict: the same number of cells on every line, no stray quotes, valid UTF-8; a BOM at the
 * very start is dropped. Parse and read errors reject with a CSV LexiconsError naming the file,
 * the line the bad record starts on and, when known, the column (`columnName` maps an index).
 *
 * Records are handled in csv-parse's `data` events, synchronously as they are parsed, so the line
 * count is exact when an error comes and nothing is buffered between parser and handler.
 */
export function readCsvFile(file: string, onRecord: RecordHandler, columnName: (index: number) => string | undefined = () => undefined): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    const input = createReadStream(file, { highWaterMark: 1 << 20 });
    const utf8 = new Utf8Check();
    const parser = new Parser({ bom: true, raw: true, relax_column_count: false, relax_quotes: false, skip_empty_lines: false });
    // csv-parse's own count treats a CRLF inside a quoted cell as two lines; count here.
    let line = 1;
    let settled = false;
    const stop = (): void => {
      settled = true;
      input.destroy();
      utf8.destroy();
      parser.destroy();
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      stop();
      reject(wrapParseError(file, line, err, columnName));
    };
    parser.on('data', (rec: { record: Cell[]; raw: string }) => {
      if (settled) return;
      const cells = rec.record;
      nullifyEmpty(cells, rec.raw);
      const start = line;
      line += 1 + countNewlines(cells);
      let more: void | boolean;
      try {
        more = onRecord(cells, start);
      } catch (err) {
        stop();
        reject(err);
        return;
      }
      if (more === false) {
        stop();
        resolvePromise();
      }
    });
    parser.on('end', () => {
      if (settled) return;
      settled = true;
      resolvePromise();
    });
    parser.on('error', fail);
    utf8.on('error', fail);
    input.on('error', fail);
    input.pipe(utf8).pipe(parser);
  });
}

function wrapParseError(file: string, line: number, err: unknown, columnName: (index: number) => string | undefined): LexiconsError {
  const e = err as Partial<CsvError> & NodeJS.ErrnoException;
  if (err instanceof LexiconsError) return csvError(`${file}: ${err.message}`, err);
  if (typeof e.code === 'string' && !e.code.startsWith('CSV_') && !e.code.startsWith('INVALID_')) {
    return csvError(`${file}: cannot read: ${e.message}`, err);
  }
  let where = `${file}, line ${line}`;
  if (e.code !== 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH' && typeof e.index === 'number') {
    where += `, column ${columnName(e.index) ?? e.index + 1}`;
  }
  const what =
    e.code === 'CSV_QUOTE_NOT_CLOSED' ? 'unclosed quote (the file is truncated or a quote is missing)'
    : e.code === 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH' ? `wrong number of cells (${e.message?.replace(/ on line \d+$/, '')})`
    : String(e.message);
  return csvError(`${where}: ${what}`, err);
}
