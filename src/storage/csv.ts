/**
 * @module storage/csv
 * CSV files of the data folder, as text: streaming read through csv-parse (strict: valid UTF-8,
 * the same number of cells on every line, exact line numbers in errors) and batched formatting
 * through csv-stringify. What the cells mean is csv-codec.ts.
 */
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { Parser, type CsvError } from 'csv-parse';
import { isUtf8 } from 'node:buffer';
import { stringify } from 'csv-stringify/sync';
import { LexiconsError } from '../errors.js';
import { csvError, type Cell } from './csv-codec.js';

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
