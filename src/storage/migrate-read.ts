/**
 * @module storage/migrate-read
 * The data a folder holds, read without any Model: for `lexicons migrate`, which compares it with
 * the Models the app now declares. Each table's rows as a start would load them (the binary
 * snapshot file, values as Arrow holds them; or the CSV file, cells as text) with the write-ahead
 * log's later commits applied over them (values as logged, JSON), keyed by column name: what
 * recovery would produce, minus the Models' checks. Nothing is written (a torn log tail is left
 * out, as recovery would cut it).
 *
 * @example
 * const stored = await readStoredData('data/');
 * for (const [name, t] of stored.tables) console.log(name, t.columns, t.rows.size);
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import * as arrow from 'apache-arrow';
import { messageOf } from '../errors.js';
import type { ArrowFileInfo } from './arrow-snapshot.js';
import { fileColumnReader } from './uuid-values.js';
import { readCsvFile } from './csv.js';
import type { Cell } from './csv-codec.js';
import { csvError } from './csv-codec.js';
import { ioError } from './file-system.js';
import { legacyNames } from './persist.js';
import { planLog, type LogPlan } from './recovery.js';
import { readManifest, type Manifest } from './snapshot.js';
import { planSources } from './start-sources.js';
import { LogResolver, scanSegment, type WalRecord } from './wal-format.js';

/** A stored value: a CSV cell (text, null for an empty unquoted cell), or a logged or Arrow value. */
export type StoredValue = { readonly cell: Cell } | { readonly json: unknown };

export interface StoredTable {
  readonly name: string;
  /** The table's snapshot file (CSV or Arrow), or null (only in the log). */
  readonly file: string | null;
  /** Column names other than pk: the snapshot file's, then any the log adds, in first-seen order. */
  readonly columns: string[];
  /** pk -> column -> value. */
  readonly rows: Map<string, Map<string, StoredValue>>;
}

export interface StoredData {
  readonly dir: string;
  readonly manifest: Manifest | null;
  readonly plan: LogPlan;
  /** Log commits applied over the CSV files. */
  readonly replayed: number;
  readonly tables: Map<string, StoredTable>;
}

const STORED_FILE = /^([A-Za-z_][A-Za-z0-9_]*)\.(?:csv|arrow)$/;

function tableOf(tables: Map<string, StoredTable>, name: string, file: string | null = null): StoredTable {
  let t = tables.get(name);
  if (!t) tables.set(name, (t = { name, file, columns: [], rows: new Map() }));
  return t;
}

async function readCsvTable(tables: Map<string, StoredTable>, name: string, file: string): Promise<void> {
  const table = tableOf(tables, name, file);
  let header: string[] | null = null;
  let pkIndex = -1;
  await readCsvFile(file, (cells, line) => {
    if (header === null) {
      header = cells.map((c) => c ?? '');
      pkIndex = header.indexOf('pk');
      if (pkIndex < 0) throw csvError(`${file}, line 1 (header): no pk column`);
      table.columns.push(...header.filter((c) => c !== 'pk'));
      return;
    }
    const pk = cells[pkIndex];
    if (pk === null || pk === undefined || pk === '') throw csvError(`${file}, line ${line}, column pk: empty pk`);
    const row = new Map<string, StoredValue>();
    header.forEach((column, i) => {
      if (i !== pkIndex) row.set(column, { cell: cells[i] ?? null });
    });
    table.rows.set(pk, row);
  });
}

function applyCommit(tables: Map<string, StoredTable>, record: WalRecord & { type: 'commit' }): void {
  for (const [name, change] of Object.entries(record.tables)) {
    const table = tableOf(tables, name);
    for (const pk of change.deletes) table.rows.delete(pk);
    for (const raw of change.upserts) {
      const row = new Map<string, StoredValue>();
      for (const [column, value] of Object.entries(raw)) {
        if (column === 'pk') continue;
        if (!table.columns.includes(column)) table.columns.push(column);
        row.set(column, { json: value });
      }
      table.rows.set(String(raw.pk), row);
    }
  }
}

/** A logged or Arrow value as plain JSON-like data (int64 as number, lists as arrays). */
function plain(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof arrow.Vector) return Array.from(value as Iterable<unknown>, plain);
  return value;
}

/** A binary snapshot file (`<Table>.arrow`), checked against the manifest's size and CRC-32 when it has them. */
async function readArrowTable(tables: Map<string, StoredTable>, name: string, file: string, expect: ArrowFileInfo | null): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  }
  if (expect && (bytes.length !== expect.bytes || crc32(bytes) >>> 0 !== expect.crc32 >>> 0)) {
    throw csvError(`${file}: ${bytes.length} bytes with CRC-32 ${crc32(bytes) >>> 0}, the manifest says ${expect.bytes} bytes with ${expect.crc32 >>> 0}: the binary snapshot is torn or corrupt`);
  }
  let data: arrow.Table;
  try {
    data = arrow.tableFromIPC(bytes);
  } catch (err) {
    throw csvError(`${file}: not an Arrow IPC file (${messageOf(err)})`);
  }
  const names = data.schema.fields.map((f) => f.name);
  const pk = data.getChild('pk');
  if (!pk) throw csvError(`${file}: no pk column`);
  const table = tableOf(tables, name, file);
  const reader = (n: string): ((i: number) => unknown) => fileColumnReader(data.schema.fields.find((f) => f.name === n)!, data.getChild(n)!, plain);
  const pkOf = reader('pk');
  const columns = names.filter((n) => n !== 'pk').map((n) => ({ n, get: reader(n) }));
  table.columns.push(...columns.map((c) => c.n));
  for (let i = 0; i < data.numRows; i++) {
    const row = new Map<string, StoredValue>();
    for (const { n, get } of columns) row.set(n, { json: get(i) });
    table.rows.set(String(pkOf(i)), row);
  }
}

/** Table names the folder holds files of, or its manifest names, plus `known`. */
function storedTableNames(files: readonly string[], manifest: Manifest | null, known: readonly string[]): string[] {
  const names = new Set(known);
  // A known table's file under its original Python name is that table's, not another table.
  const claimed = new Set(known.filter((t) => !files.includes(`${t}.csv`)).flatMap((t) => legacyNames(t)));
  for (const f of files) {
    const m = STORED_FILE.exec(f);
    if (m && !claimed.has(f)) names.add(m[1]!);
  }
  for (const t of Object.keys(manifest?.tables ?? {})) names.add(t);
  for (const t of Object.keys(manifest?.csv?.tables ?? {})) names.add(t);
  return [...names].sort();
}

/**
 * Reads the data folder `dir`: each table from the file a start would load it from (the binary
 * snapshot, or the CSV file when it is the snapshot or was edited since; start-sources.ts), then
 * the log after the snapshot. A CSV file under the original Python lexicons' name of one of
 * `tables` (`chat_message.csv`) is read as that table when it has no file of its own name.
 * Refuses a folder whose last snapshot was interrupted mid-install (a start, `compact` or
 * `migrate` without `--dry-run` completes it first).
 */
export async function readStoredData(dir: string, tables: readonly string[] = []): Promise<StoredData> {
  const root = resolve(dir);
  let files: string[];
  try {
    files = await readdir(root);
  } catch (err) {
    throw ioError(`cannot read data folder ${root}`, err);
  }
  const manifest = await readManifest(root);
  if (manifest?.install || manifest?.csvInstall) {
    throw csvError(`${root}: a snapshot was interrupted while it was installed; run lexicons migrate without --dry-run (or start the server once with the old Models) to complete it first`);
  }
  const plan = await planLog(root, manifest?.segment ?? 0);
  const names = storedTableNames(files, manifest, tables);
  // The sources are chosen by table name only: a schema of names stands in for the Models.
  const byName = new Map(names.map((name) => [name, { name, fields: [], byName: new Map(), model: undefined }] as const));
  const sources = await planSources(root, { tables: [...byName.values()], byName }, manifest, plan.lastCommitId);
  const stored = new Map<string, StoredTable>();
  for (const name of names) {
    const source = sources.sources.get(name);
    if (source?.kind === 'arrow') await readArrowTable(stored, name, source.file, source.expect);
    else if (source?.kind === 'csv') {
      const file = [`${name}.csv`, ...legacyNames(name)].find((f) => files.includes(f));
      if (file !== undefined) await readCsvTable(stored, name, join(root, file));
    }
  }
  const after = manifest?.commitId ?? 0;
  const resolver = new LogResolver();
  let replayed = 0;
  const apply = (c: WalRecord & { type: 'commit' }): void => {
    if (c.commitId <= after) return;
    applyCommit(stored, c);
    replayed++;
  };
  for (const s of plan.segments) {
    await scanSegment(s.file, (record, offset) => {
      if (offset >= s.validBytes) return; // past the cut
      for (const c of resolver.push(record)) apply(c);
    });
  }
  for (const c of resolver.finish()) apply(c);
  return { dir: root, manifest, plan, replayed, tables: stored };
}
