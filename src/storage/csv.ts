/**
 * @module storage/csv
 * CSV files of the data folder, as text: streaming read through our parser (csv-parser.ts;
 * strict: valid UTF-8, the same number of cells on every line, exact line numbers in errors) and
 * batched formatting through csv-stringify. What the cells mean is csv-codec.ts.
 */
import { isUtf8 } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { stringify } from 'csv-stringify/sync';
import { LexiconsError } from '../errors.js';
import { csvError, type Cell } from './csv-codec.js';
import { CsvParser, type CsvParseError } from './csv-parser.js';

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

/** Bytes read per read(2). */
const READ_BYTES = 1 << 20;

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
 * Reads a CSV file (1 MiB reads, csv-parser.ts) and hands every record to `onRecord`. Strict: the
 * same number of cells on every line, no stray quotes, valid UTF-8; a BOM at the very start is
 * dropped. Parse and read errors reject with a CSV LexiconsError naming the file, the line the bad
 * record starts on and, when known, the column (`columnName` maps an index).
 */
export async function readCsvFile(file: string, onRecord: RecordHandler, columnName: (index: number) => string | undefined = () => undefined): Promise<void> {
  let line = 1;
  let handlerError: { err: unknown } | null = null;
  const parser = new CsvParser((cells, inner) => {
    const start = line;
    line += 1 + inner;
    try {
      return onRecord(cells, start) !== false;
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
      const chunk = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await fh.read(chunk, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      const read = chunk.subarray(0, bytesRead);
      const checked = checkUtf8(carry.length > 0 ? Buffer.concat([carry, read]) : read, offset);
      offset += checked.body.length;
      carry = checked.carry;
      parser.push(checked.body);
      if (parser.stopped) return;
    }
    if (carry.length > 0) throw csvError(`not valid UTF-8 (truncated character at byte ${offset})`);
    parser.end();
  } catch (err) {
    if (handlerError !== null && (handlerError as { err: unknown }).err === err) throw err;
    throw wrapParseError(file, line, err, columnName);
  } finally {
    await fh?.close();
  }
}

function wrapParseError(file: string, line: number, err: unknown, columnName: (index: number) => string | undefined): LexiconsError {
  const e = err as Partial<CsvParseError> & NodeJS.ErrnoException;
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
