/**
 * @module storage/csv-parser
 * The CSV reader of the data folder: RFC 4180 records over raw bytes, strict as csv-parse was with
 * `relax_quotes: false, relax_column_count: false` (its error codes and messages are kept, so the
 * errors of csv.ts read the same), and ~4x faster on a data folder's files: csv-parse decodes its
 * input to a string and walks it character by character through a general state machine with
 * options, and was 40% of a CSV load. Here each cell is one `utf8Slice` of the bytes read, an
 * empty unquoted cell is null and a quoted empty cell `""` is the empty string (no second pass over
 * the record's raw text), and line numbers count the line breaks inside quoted cells.
 *
 * Rules: cells are separated by `,`; records end at the line break the first record ends with, LF
 * or CRLF, as csv-parse detected it (in an LF file a CR is data, in a CRLF file a lone LF is data),
 * or at the end of the file; a cell
 * starting with `"` is quoted (`""` inside is one quote; commas and line breaks are data) and must
 * be followed by `,` or the record's end; a quote anywhere else is an error; every record has the
 * header's number of cells (an empty line is a record of one empty cell); a UTF-8 BOM at the very
 * start is dropped; bytes must be valid UTF-8.
 */

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

/** A parse error in csv-parse's shape (code, message, index of the cell), positioned by the caller. */
export class CsvParseError extends Error {
  readonly code: string;
  /** Index of the cell in its record, when known. */
  readonly index: number | undefined;
  constructor(code: string, message: string, index?: number) {
    super(message);
    this.code = code;
    this.index = index;
  }
}

/** Receives a record's cells and its number of line breaks inside quoted cells; false stops. */
export type CellsHandler = (cells: Array<string | null>, innerLines: number) => boolean;

type Sliceable = Buffer & { utf8Slice(start: number, end: number): string };

/**
 * Incremental parser: `push` every chunk of the file in order, then `end`. Records are handed to
 * the handler as soon as they are complete; a record cut by a chunk boundary waits for the next.
 */
export class CsvParser {
  readonly #onRecord: CellsHandler;
  #pending: Buffer | null = null;
  #first = true;
  /** The record delimiter: unknown until the first record ends, then LF or CRLF. */
  #crlf: boolean | null = null;
  #columns = -1;
  #records = 0;
  #stopped = false;

  constructor(onRecord: CellsHandler) {
    this.#onRecord = onRecord;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Parses what it can of `chunk` (after what was left of the previous ones). */
  push(chunk: Buffer): void {
    let buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    if (this.#first) {
      if (buf.length < 3 && buf.length > 0 && buf[0] === 0xef) {
        this.#pending = buf; // a BOM cut by the chunk boundary (tiny first chunks only)
        return;
      }
      this.#first = false;
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    const used = this.#parse(buf, false);
    this.#pending = used < buf.length ? Buffer.from(buf.subarray(used)) : null;
  }

  /** The end of the file: parses the last record (which may lack its line break). */
  end(): void {
    const buf = this.#pending;
    this.#pending = null;
    if (buf && buf.length > 0) {
      if (this.#first && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) this.#parse(buf.subarray(3), true);
      else this.#parse(buf, true);
    }
  }

  /** Parses whole records from `buf`; returns how many bytes were consumed. */
  #parse(buf: Buffer, final: boolean): number {
    const bytes = buf as Sliceable;
    const end = buf.length;
    let p = 0;
    while (p < end && !this.#stopped) {
      const start = p;
      const cells: Array<string | null> = [];
      let inner = 0;
      let complete = false;
      for (;;) {
        if (p < end && buf[p] === QUOTE) {
          // A quoted cell: up to the quote not followed by another one.
          let q = p + 1;
          let escaped = false;
          let close = -1;
          while (q < end) {
            const c = buf[q]!;
            if (c === QUOTE) {
              if (q + 1 < end && buf[q + 1] === QUOTE) {
                escaped = true;
                q += 2;
                continue;
              }
              if (q + 1 === end && !final) break; // is it "" across the boundary? wait for more
              close = q;
              break;
            }
            if (c === LF) inner++;
            q++;
          }
          if (close < 0) {
            if (!final) return start;
            throw new CsvParseError('CSV_QUOTE_NOT_CLOSED', 'Quote Not Closed: the parsing is finished with an opening quote', cells.length);
          }
          const text = bytes.utf8Slice(p + 1, close);
          cells.push(escaped ? text.replaceAll('""', '"') : text);
          p = close + 1;
          if (p === end) {
            if (!final) return start;
            complete = true;
            break;
          }
          const c = buf[p]!;
          if (c === COMMA) {
            p++;
            continue;
          }
          if (c === LF && this.#crlf !== true) {
            this.#crlf = false;
            p++;
            complete = true;
            break;
          }
          if (c === CR && this.#crlf !== false) {
            if (p + 1 === end && !final) return start;
            if (buf[p + 1] === LF) {
              this.#crlf = true;
              p += 2;
              complete = true;
              break;
            }
          }
          throw new CsvParseError('CSV_INVALID_CLOSING_QUOTE', `Invalid Closing Quote: got "${String.fromCharCode(c)}" instead of a delimiter or a record delimiter`, cells.length - 1);
        }
        // An unquoted cell: up to the next comma or record delimiter; a quote in it is an error.
        let q = p;
        let stop = -1; // where the cell's text ends, at a record delimiter
        while (q < end) {
          const c = buf[q]!;
          if (c === COMMA) break;
          if (c === LF) {
            const cr = q > p && buf[q - 1] === CR;
            if (this.#crlf === null) this.#crlf = cr;
            if (!this.#crlf || cr) {
              stop = this.#crlf ? q - 1 : q;
              break;
            }
            inner++; // a lone LF in a CRLF file: data
          }
          if (c === QUOTE) throw new CsvParseError('CSV_INVALID_OPENING_QUOTE', `Invalid Opening Quote: a quote is found in field ${cells.length + 1}, value is ${JSON.stringify(bytes.utf8Slice(p, q))}`, cells.length);
          q++;
        }
        if (q === end && !final) return start;
        if (stop < 0) stop = q;
        cells.push(stop === p ? null : bytes.utf8Slice(p, stop));
        if (q === end) {
          p = q;
          complete = true;
          break;
        }
        p = q + 1;
        if (buf[q] === LF) {
          complete = true;
          break;
        }
        if (p === end) {
          // A comma at the very end: one more (empty) cell, unless more data comes.
          if (!final) return start;
          cells.push(null);
          complete = true;
          break;
        }
      }
      if (!complete) return start;
      this.#record(cells, inner);
    }
    return p;
  }

  #record(cells: Array<string | null>, inner: number): void {
    this.#records++;
    if (this.#columns < 0) this.#columns = cells.length;
    else if (cells.length !== this.#columns) {
      throw new CsvParseError('CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', `Invalid Record Length: expect ${this.#columns}, got ${cells.length}`);
    }
    if (this.#onRecord(cells, inner) === false) this.#stopped = true;
  }
}
