/**
 * @module storage/migrate-read
 * The data a folder holds, read without any Model: for `lexicons migrate`, which compares it with
 * the Models the app now declares. Each table's rows as the last snapshot's CSV file holds them
 * (cells as text) with the write-ahead log's later commits applied over them (values as logged,
 * JSON), keyed by column name: what recovery would produce, minus the Models' checks. Nothing is
 * written (a torn log tail is left out, as recovery would cut it).
 *
 * @example
 * const stored = await readStoredData('data/');
 * for (const [name, t] of stored.tables) console.log(name, t.columns, t.rows.size);
 */
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readCsvFile } from './csv.js';
import type { Cell } from './csv-codec.js';
import { csvError } from './csv-codec.js';
import { ioError } from './file-system.js';
import { legacyNames } from './persist.js';
import { planLog, type LogPlan } from './recovery.js';
import { isSystemTableName } from './schema.js';
import { readManifest, type Manifest } from './snapshot.js';
import { LogResolver, scanSegment, type WalRecord } from './wal-format.js';

/** A stored value: a CSV cell (text, null for an empty unquoted cell) or a logged JSON value. */
export type StoredValue = { readonly cell: Cell } | { readonly json: unknown };

export interface StoredTable {
  readonly name: string;
  /** The table's CSV file, or null (only in the log). */
  readonly file: string | null;
  /** Column names other than pk: the CSV header's, then any the log adds, in first-seen order. */
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

const CSV_FILE = /^([A-Za-z_][A-Za-z0-9_]*)\.csv$/;

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
    if (isSystemTableName(name)) continue;
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

/**
 * Reads the data folder `dir`: the CSV files of the last snapshot and the log after it. A file
 * under the original Python lexicons' name of one of `tables` (`chat_message.csv`) is read as that
 * table, as a start does, when the table has no file of its own name. Refuses a folder whose last
 * snapshot was interrupted mid-install (a start, `compact` or `migrate` without `--dry-run`
 * completes it first).
 */
export async function readStoredData(dir: string, tables: readonly string[] = []): Promise<StoredData> {
  const root = resolve(dir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    throw ioError(`cannot read data folder ${root}`, err);
  }
  const manifest = await readManifest(root);
  if (manifest?.install) throw csvError(`${root}: a snapshot was interrupted while it was installed; run lexicons migrate without --dry-run (or start the server once with the old Models) to complete it first`);
  const legacy = new Map<string, string>();
  for (const t of tables) if (!names.includes(`${t}.csv`)) for (const file of legacyNames(t)) legacy.set(file, t);
  const stored = new Map<string, StoredTable>();
  for (const name of names.sort()) {
    const m = CSV_FILE.exec(name);
    const table = legacy.get(name) ?? m?.[1];
    if (table !== undefined && !isSystemTableName(table) && !stored.has(table)) await readCsvTable(stored, table, join(root, name));
  }
  const plan = await planLog(root, manifest?.segment ?? 0);
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
