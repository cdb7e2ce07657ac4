/**
 * @module storage/csv
 * CSV files of the data folder, as text: streaming read through csv-parse (strict: valid UTF-8,
 * the same number of cells on every line, exact line numbers in errors) and batched formatting
 * through csv-stringify. What the cells mean is csv-codec.ts.
 *
 * csv-parse is used in its leanest form: Buffers in (64 KiB reads, no string decode of the input,
 * no stream pipeline), records as the arrays it builds anyway (`columns`, `cast`, `raw`, `info`,
 * `on_record` all off: each of those builds objects per record or per field), taken synchronously
 * in its `data` events. The one thing csv-parse does not tell apart, a quoted empty cell `""`
 * (the empty string) from an empty cell (null), is read from the bytes of the records that have an
 * empty cell, located by the parser's public byte count (`parser.info.bytes`).
 */
import { isUtf8 } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { Parser, type CsvError } from 'csv-parse';
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
 * Receives each record of a file in order: its cells (null for an empty unquoted cell) and the
 * line it starts on (1-based; the header is line 1). Called synchronously; return `false` to
 * stop reading; a throw stops reading and rejects {@link readCsvFile} with that error.
 */
export type RecordHandler = (cells: Cell[], line: number) => void | boolean;

/** csv-parse's options: RFC 4180, strict, a BOM at the very start dropped; records as arrays. */
const PARSE_OPTIONS = { bom: true, relax_column_count: false, relax_quotes: false, skip_empty_lines: false } as const;

function countNewlines(cells: readonly Cell[]): number {
  let n = 0;
  for (const c of cells) {
    if (c === null) continue;
    for (let i = c.indexOf('\n'); i >= 0; i = c.indexOf('\n', i + 1)) n++;
  }
  return n;
}

/** The bytes fed to the parser, addressed by their offset in the file, kept while a record may need them. */
class FedBytes {
  #chunks: Buffer[] = [];
  /** Offset of the first byte of `#chunks[0]`. */
  #start = 0;

  add(chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  /** Bytes [from, to) (a view when they lie in one chunk). */
  slice(from: number, to: number): Buffer {
    const parts: Buffer[] = [];
    let at = this.#start;
    for (const c of this.#chunks) {
      const a = Math.max(from, at);
      const b = Math.min(to, at + c.length);
      if (a < b) parts.push(c.subarray(a - at, b - at));
      at += c.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Forgets the chunks that end at or before `offset`. */
  release(offset: number): void {
    while (this.#chunks.length > 1 && this.#start + this.#chunks[0]!.length <= offset) this.#start += this.#chunks.shift()!.length;
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;

/**
 * Sets to null the empty cells of a record that were not quoted, from the record's bytes (`atStart`:
 * the file's first bytes, where a BOM is skipped as csv-parse did). Only called for records with an
 * empty cell. Each cell either starts with a quote (quoted: up to the closing quote; `""` inside is
 * an escaped quote) or holds no quote and no comma (csv-parse refused anything else), so the next
 * cell starts after the next comma.
 */
function nullifyEmpty(cells: Cell[], raw: Buffer, atStart: boolean): void {
  let pos = atStart && raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? 3 : 0;
  for (let k = 0; k < cells.length; k++) {
    if (raw[pos] === QUOTE) {
      pos++;
      for (;;) {
        const q = raw.indexOf(QUOTE, pos);
        if (q < 0) return; // cannot happen for a record csv-parse accepted
        if (raw[q + 1] === QUOTE) pos = q + 2;
        else {
          pos = q + 1;
          break;
        }
      }
    } else if (cells[k] === '') cells[k] = null;
    const comma = raw.indexOf(COMMA, pos);
    if (comma < 0) break;
    pos = comma + 1;
  }
}

/**
 * csv-parse fed chunk by chunk: `write` each chunk of the file in order (each record completed by
 * it is handed over before the promise settles), then `end`. Parse errors reject as csv-parse's
 * CsvError; `line` is then the line the failing record starts on.
 */
export class CsvRecords {
  readonly #parser = new Parser(PARSE_OPTIONS);
  readonly #bytes = new FedBytes();
  readonly #onRecord: RecordHandler;
  /** Line the next record starts on (csv-parse's own count treats a CRLF inside a quoted cell as two lines). */
  #line = 1;
  /** Stream offset where the next record starts. */
  #recordStart = 0;
  #records = 0;
  #stopped = false;
  #handlerError: { err: unknown } | null = null;
  #parseError: unknown = null;

  constructor(onRecord: RecordHandler) {
    this.#onRecord = onRecord;
    this.#parser.on('data', (cells: Cell[]) => this.#take(cells));
    this.#parser.on('error', (err) => {
      this.#parseError ??= err;
    });
  }

  get line(): number {
    return this.#line;
  }

  /** True once the handler returned false or threw: nothing more is read. */
  get stopped(): boolean {
    return this.#stopped;
  }

  #take(cells: Cell[]): void {
    if (this.#stopped) return;
    const info = this.#parser.info;
    // The byte count below is the end of *this* record only while records are handed over
    // synchronously as csv-parse pushes them (a flowing stream with a 'data' listener does that).
    if (info.records !== ++this.#records) throw new Error(`csv-parse handed record ${this.#records} over late (at record ${info.records})`);
    const end = info.bytes;
    for (const c of cells) {
      if (c === '') {
        nullifyEmpty(cells, this.#bytes.slice(this.#recordStart, end), this.#recordStart === 0);
        break;
      }
    }
    this.#recordStart = end;
    const start = this.#line;
    this.#line += 1 + countNewlines(cells);
    try {
      if (this.#onRecord(cells, start) === false) this.#stopped = true;
    } catch (err) {
      this.#handlerError = { err };
      this.#stopped = true;
    }
  }

  #settle(err: Error | null | undefined): void {
    if (this.#handlerError !== null) throw this.#handlerError.err;
    const failure = this.#parseError ?? err;
    if (failure) throw failure;
  }

  /** Parses `chunk` (the next bytes of the file). */
  async write(chunk: Buffer): Promise<void> {
    if (this.#stopped) return;
    this.#bytes.add(chunk);
    const err = await new Promise<Error | null | undefined>((resolve) => this.#parser.write(chunk, resolve));
    this.#settle(err);
    this.#bytes.release(this.#recordStart);
  }

  /** Parses the last record (the file may end without a line break). */
  async end(): Promise<void> {
    if (this.#stopped) return;
    const err = await new Promise<Error | null | undefined>((resolve) => {
      this.#parser.once('error', resolve);
      this.#parser.end(() => resolve(null));
    });
    this.#settle(err);
  }

  /** Frees the parser (after an error, or when reading stopped early). */
  destroy(): void {
    this.#parser.destroy();
  }
}

/**
 * Bytes read per read(2). 64 KiB, not more: csv-parse copies each chunk once (it joins it to the
 * bytes left from the previous one), and buffers of 128 KiB and more are mmapped fresh by malloc,
 * so every page of every copy faults (measured on a 41 MB file: 28,300 minor page faults with
 * 1 MiB reads, 7,100 with 64 KiB).
 */
const READ_BYTES = 1 << 16;

/**
 * Strict UTF-8 check of one read chunk (csv-parse would have turned invalid bytes into U+FFFD, and
 * a later save would write that back, altering the data): the chunk's complete characters, and the
 * bytes of a character cut at its end (carried over to the next chunk).
 */
function checkUtf8(buf: Buffer, offset: number): { body: Buffer; carry: Buffer } {
  let end = buf.length;
  let i = end - 1;
  while (i >= 0 && end - i < 4 && (buf[i]! & 0xc0) === 0x80) i--; // continuation bytes
  if (i >= 0) {
    const lead = buf[i]!;
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (end - i < need) end = i; // incomplete last character: keep it for the next chunk
  }
  const body = buf.subarray(0, end);
  if (!isUtf8(body)) throw csvError(`not valid UTF-8 (within bytes ${offset}–${offset + body.length})`);
  return { body, carry: buf.subarray(end) };
}

/**
 * Reads a CSV file (64 KiB reads, csv-parse) and hands every record to `onRecord`. Strict: the
 * same number of cells on every line, no stray quotes, valid UTF-8; a BOM at the very start is
 * dropped. Parse and read errors reject with a CSV LexiconsError naming the file, the line the bad
 * record starts on and, when known, the column (`columnName` maps an index).
 */
export async function readCsvFile(file: string, onRecord: RecordHandler, columnName: (index: number) => string | undefined = () => undefined): Promise<void> {
  let handlerError: { err: unknown } | null = null;
  const records = new CsvRecords((cells, line) => {
    try {
      return onRecord(cells, line);
    } catch (err) {
      handlerError = { err };
      throw err;
    }
  });
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, 'r');
    let offset = 0;
    let carry: Buffer = Buffer.alloc(0);
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_BYTES); // a fresh buffer: CsvRecords keeps the bytes of a record it has not finished
      const { bytesRead } = await fh.read(chunk, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      const read = chunk.subarray(0, bytesRead);
      const checked = checkUtf8(carry.length > 0 ? Buffer.concat([carry, read]) : read, offset);
      offset += checked.body.length;
      carry = checked.carry;
      await records.write(checked.body);
      if (records.stopped) return;
    }
    if (carry.length > 0) throw csvError(`not valid UTF-8 (truncated character at byte ${offset})`);
    await records.end();
  } catch (err) {
    if (handlerError !== null && (handlerError as { err: unknown }).err === err) throw err;
    throw wrapParseError(file, records.line, err, columnName);
  } finally {
    records.destroy();
    await fh?.close();
  }
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
