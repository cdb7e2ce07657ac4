/**
 * @module storage/arrow-snapshot-load
 * Loading a binary snapshot file (arrow-snapshot.ts) into a fresh store at start.
 *
 * A file written by lexicons for this very table layout (its schema equal to the table's) is read
 * body buffer by body buffer straight into the store's SharedArrayBuffers and published as one
 * commit: no row object, no per-cell work beyond checks of offsets and dictionary indices. The
 * CRC-32 of the whole file (recorded in the manifest) is computed over the same reads, so a torn
 * or corrupt file is refused before anything is published. Any other Arrow file (a Model changed
 * since, a file written by pyarrow) takes the generic path: apache-arrow's reader, then `bulkLoad`
 * in batches, with the CSV load's rules for missing fields and columns the Model no longer has.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { readFileLayout, type FileBatch } from './arrow-ipc.js';
import { arrowSchemaOf, describeField, type ArrowFileInfo } from './arrow-snapshot.js';
import { BoolValues, DictValues, Float64Values, Int64Values, ListValues, Utf8Values, type Values } from './column-values.js';
import { ioError } from './file-system.js';
import { MIGRATE_HINT } from './persist.js';
import type { GrowBuf } from './grow-buf.js';
import type { TableSchema } from './schema.js';
import type { SharedStore } from './store.js';
import type { SharedTable } from './table.js';
import { fileColumnReader, UuidValues } from './uuid-values.js';

function corrupt(file: string, what: string): LexiconsError {
  return new LexiconsError(
    ErrorCode.CSV,
    `${file}: ${what}: the binary snapshot is torn or corrupt; restore it from a backup, or remove the data folder's snapshot.json to start from the CSV files and the whole log (only if they hold every commit; lexicons check tells)`,
  );
}

/** An open file read with positioned reads, its CRC-32 chained over reads made in file order. */
class SnapshotFile {
  readonly path: string;
  readonly fd: number;
  readonly size: number;
  crc = 0;
  position = 0;

  constructor(path: string) {
    this.path = path;
    try {
      this.fd = openSync(path, 'r');
      this.size = fstatSync(this.fd).size;
    } catch (err) {
      throw ioError(`cannot read ${path}`, err);
    }
  }

  readAt(position: number, length: number, into: Uint8Array = new Uint8Array(length)): Uint8Array {
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd, into, done, length - done, position + done);
      if (n === 0) throw corrupt(this.path, `${this.size} bytes, a read at ${position + done} found its end`);
      done += n;
    }
    return into;
  }

  /**
   * Reads the next `length` bytes in file order into `into` (or a scratch array), chaining the CRC.
   * 1 MiB at a time, each piece checksummed while it is still in the CPU cache (measured: a CRC pass
   * over 36 MB just read cost as much as the read itself, against ~10% in pieces).
   */
  next(length: number, into?: Uint8Array): void {
    for (let done = 0; done < length; ) {
      const n = Math.min(length - done, 1 << 20);
      const buf = this.readAt(this.position, n, into?.subarray(done, done + n));
      this.crc = crc32(buf, this.crc);
      this.position += n;
      done += n;
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Where one body buffer of the file goes: a growable buffer of the table, from byte 0. */
interface Destination {
  readonly buf: GrowBuf | null; // null: must be empty (a validity of a column without nulls, list items)
  readonly region: { readonly offset: number; readonly length: number };
  readonly batch: FileBatch;
}

/** The destinations of a value store's buffers in file order, or null when the layout differs. */
function destinationsOf(values: Values, batch: FileBatch, nodeAt: { n: number; b: number }, out: Destination[]): boolean {
  const take = (buf: GrowBuf | null): void => {
    out.push({ buf, region: batch.buffers[nodeAt.b++]!, batch });
  };
  if (values instanceof Int64Values || values instanceof Float64Values || values instanceof DictValues) take(values.buf);
  else if (values instanceof BoolValues) take(values.bits.buf);
  else if (values instanceof Utf8Values || values instanceof UuidValues) {
    take(values.offsets);
    take(values.data);
  } else if (values instanceof ListValues) {
    take(values.offsets);
    if (batch.nodes[nodeAt.n++]?.nullCount !== 0) return false;
    take(null); // the items' validity
    return destinationsOf(values.child, batch, nodeAt, out);
  }
  return true;
}

/** Bytes read into each buffer by a fast load. */
type Loaded = ReadonlyMap<GrowBuf, number>;

/**
 * Checks what a fast load put in a value store of `n` slots: offsets start at 0, never decrease
 * and stay within the bytes or items loaded; dictionary indices are in range; fixed-width values
 * cover every slot. A file that passed its CRC only fails here if it was not written by lexicons.
 */
function checkValues(file: string, what: string, values: Values, n: number, loaded: Loaded): void {
  const bytes = (buf: GrowBuf): number => loaded.get(buf) ?? 0;
  const offsets = (buf: GrowBuf): number => {
    const off = buf.i32(n);
    if (n === 0) return 0;
    if (bytes(buf) < (n + 1) * 4 || off[0] !== 0) throw corrupt(file, `${what}: offsets do not start at 0`);
    for (let i = 0; i < n; i++) if (off[i + 1]! < off[i]!) throw corrupt(file, `${what}: offsets decrease at row ${i}`);
    return off[n]!;
  };
  if (values instanceof Utf8Values || values instanceof UuidValues) {
    if (offsets(values.offsets) > bytes(values.data)) throw corrupt(file, `${what}: offsets run past the text`);
  } else if (values instanceof ListValues) {
    checkValues(file, `${what} items`, values.child, offsets(values.offsets), loaded);
  } else if (values instanceof DictValues) {
    if (bytes(values.buf) < n * 4) throw corrupt(file, `${what}: fewer dictionary indices than rows`);
    const count = values.entries();
    const idx = values.buf.i32(n);
    for (let i = 0; i < n; i++) if (idx[i]! < 0 || (idx[i]! >= count && count > 0)) throw corrupt(file, `${what}: dictionary index ${idx[i]} out of range at row ${i}`);
  } else if (values instanceof BoolValues) {
    if (bytes(values.bits.buf) < (n + 7) >> 3) throw corrupt(file, `${what}: fewer values than rows`);
  } else if (values instanceof Int64Values || values instanceof Float64Values) {
    if (bytes(values.buf) < n * 8) throw corrupt(file, `${what}: fewer values than rows`);
  }
}

/**
 * The fast load: the file's buffers read into the table's, in file order (CRC chained), then
 * checked. Returns the row count, or null when the file is not laid out as this table (generic
 * path; nothing was read into the table then). Throws on a size or CRC mismatch or a malformed
 * file (the table's unpublished slots then hold junk: the store must be discarded).
 */
function loadDirect(file: SnapshotFile, t: SharedTable, start: number, expect: ArrowFileInfo): number | null {
  const where = file.path;
  let layout;
  try {
    layout = readFileLayout((p, n) => file.readAt(p, n), file.size);
  } catch (err) {
    if (err instanceof LexiconsError) throw err;
    throw corrupt(where, messageOf(err));
  }
  const expected = arrowSchemaOf(t).fields.map(describeField).join(',');
  if (start !== 0 || layout.schema.fields.map(describeField).join(',') !== expected || layout.batches.length !== 1) return null;
  const batch = layout.batches[0]!;
  if (batch.compressed || layout.dictionaries.some((d) => d.compressed || d.isDelta)) return null;
  const rows = batch.length;
  const out: Destination[] = [];
  const at = { n: 1, b: 1 }; // after the pk's node and (absent) validity
  if (batch.nodes[0]?.nullCount !== 0 || batch.buffers[0]?.length !== 0 || !destinationsOf(t.pk, batch, at, out)) return null;
  const allSet: GrowBuf[] = [];
  const dictionaries: Array<{ values: DictValues; entries: number }> = [];
  for (let k = 0; k < t.columns.length; k++) {
    const column = t.columns[k]!;
    const node = batch.nodes[at.n++];
    const validity = batch.buffers[at.b++];
    if (node === undefined || node.length !== rows || validity === undefined) return null;
    if (validity.length === 0) {
      if (node.nullCount !== 0) return null;
      allSet.push(column.validity.buf);
    } else out.push({ buf: column.validity.buf, region: validity, batch });
    if (!destinationsOf(column.values, batch, at, out)) return null;
    const values = column.values;
    if (values instanceof DictValues) {
      const id = (layout.schema.fields[k + 1]!.type as arrow.Dictionary).id;
      const dict = layout.dictionaries.filter((d) => d.id === id);
      if (dict.length !== 1) return null;
      const dictBatch = dict[0]!;
      if (dictBatch.nodes[0]?.nullCount !== 0 || dictBatch.buffers[0]?.length !== 0 || !destinationsOf(values.dict, dictBatch, { n: 1, b: 1 }, out)) return null;
      dictionaries.push({ values, entries: dictBatch.length });
    }
  }
  if (at.b !== batch.buffers.length || at.n !== batch.nodes.length) return null;
  if (out.some((d) => d.buf === null && d.region.length !== 0)) return null;
  if (file.size !== expect.bytes) throw corrupt(where, `${file.size} bytes, the manifest says ${expect.bytes}`);

  // Read everything in file order: gaps (metadata, padding) through a scratch array, bodies into
  // the shared buffers. The CRC covers every byte of the file.
  const loaded = new Map<GrowBuf, number>();
  const placed = out.map((d) => ({ ...d, position: d.batch.bodyOffset + d.region.offset })).sort((x, y) => x.position - y.position);
  for (const d of placed) {
    if (d.buf === null || d.region.length === 0) continue;
    if (d.position < file.position || loaded.has(d.buf)) throw corrupt(where, 'overlapping buffers');
    file.next(d.position - file.position);
    d.buf.ensure(d.region.length + 8); // +8: room for the next slot's offset or bits
    file.next(d.region.length, new Uint8Array(d.buf.buffer, 0, d.region.length));
    loaded.set(d.buf, d.region.length);
  }
  file.next(file.size - file.position);
  if (file.crc >>> 0 !== expect.crc32 >>> 0) throw corrupt(where, `CRC-32 ${file.crc >>> 0} does not match the manifest's ${expect.crc32 >>> 0}`);
  for (const buf of allSet) {
    const n = (rows + 7) >> 3;
    buf.ensure(n + 1);
    buf.u8(0).fill(0xff, 0, n);
    loaded.set(buf, n);
  }
  for (const { values, entries } of dictionaries) {
    checkValues(where, `${t.schema.name} dictionary`, values.dict, entries, loaded);
    values.setEntries(entries);
  }
  checkValues(where, 'pk', t.pk, rows, loaded);
  t.schema.fields.forEach((f, k) => {
    checkValues(where, f.name, t.columns[k]!.values, rows, loaded);
    if ((loaded.get(t.columns[k]!.validity.buf) ?? 0) < (rows + 7) >> 3) throw corrupt(where, `${f.name}: validity shorter than the rows`);
  });
  return rows;
}

/** Converts an Arrow value to a store value (Int64 comes back as bigint, lists as vectors). */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof arrow.Vector) return Array.from(value as Iterable<unknown>, plain);
  return value;
}

/** The generic load: apache-arrow's reader, then bulkLoad in batches (missing fields get defaults). */
function loadGeneric(store: SharedStore, table: TableSchema, file: SnapshotFile, expect: ArrowFileInfo | null): number {
  const bytes = new Uint8Array(file.size);
  file.position = 0;
  file.crc = 0;
  file.next(file.size, bytes);
  if (expect && (file.size !== expect.bytes || file.crc >>> 0 !== expect.crc32 >>> 0)) throw corrupt(file.path, `${file.size} bytes with CRC-32 ${file.crc >>> 0}, the manifest says ${expect.bytes} bytes with ${expect.crc32 >>> 0}`);
  let data: arrow.Table;
  try {
    data = arrow.tableFromIPC(bytes);
  } catch (err) {
    throw corrupt(file.path, messageOf(err));
  }
  const names = data.schema.fields.map((f) => f.name);
  if (!names.includes('pk')) throw new LexiconsError(ErrorCode.CSV, `${file.path}: no pk column`);
  const extra = names.filter((n) => n !== 'pk' && !table.byName.has(n));
  if (extra.length > 0) {
    throw new LexiconsError(ErrorCode.CSV, `${file.path}: column${extra.length > 1 ? 's' : ''} ${extra.join(', ')} not in Model ${table.name}; refusing to start so no data is dropped (${MIGRATE_HINT}, or add the field back)`);
  }
  const field = (name: string): arrow.Field => data.schema.fields.find((f) => f.name === name)!;
  const pk = fileColumnReader(field('pk'), data.getChild('pk')!, plain);
  const columns = table.fields.map((f) => {
    const vector = data.getChild(f.name);
    return { f, get: vector ? fileColumnReader(field(f.name), vector, plain) : null };
  });
  let loaded = 0;
  let batch: Record<string, unknown>[] = [];
  const flush = (): void => {
    try {
      loaded += store.bulkLoad(table.name, batch);
    } catch (err) {
      throw new LexiconsError(ErrorCode.CSV, `${file.path}, rows ${loaded}–${loaded + batch.length - 1}: ${messageOf(err)}`, { cause: err });
    }
    batch = [];
  };
  for (let i = 0; i < data.numRows; i++) {
    const row: Record<string, unknown> = { pk: pk(i) };
    for (const { f, get } of columns) {
      const value = get ? get(i) : f.makeDefault();
      row[f.name] = value === null && !f.nullable ? (f.kind === 'str' ? '' : f.makeDefault()) : value;
    }
    batch.push(row);
    if (batch.length >= 50_000) flush();
  }
  if (batch.length > 0) flush();
  return loaded;
}

/**
 * Loads `<Table>.arrow` into the store's table (main thread, at start-up). `expect` is what the
 * manifest recorded (size and CRC-32, checked before anything is published); null for a file
 * without a record (checked by the generic reader only). Returns the rows loaded.
 */
export function loadTableFile(store: SharedStore, table: TableSchema, path: string, expect: ArrowFileInfo | null): number {
  const file = new SnapshotFile(path);
  try {
    let direct: number | null = null;
    if (expect) {
      store.appendColumns(table.name, (t, start) => {
        direct = loadDirect(file, t, start, expect);
        return direct ?? 0;
      });
    }
    return direct ?? loadGeneric(store, table, file, expect);
  } finally {
    file.close();
  }
}
