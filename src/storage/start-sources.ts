/**
 * @module storage/start-sources
 * Which file each table is loaded from at start, and the loading itself.
 *
 * The rules (docs/durability.md, "Which source wins at start"):
 * - no manifest (a folder never snapshotted, the seed's) or a version 1 manifest (a CSV snapshot
 *   of an earlier lexicons): every table from its CSV file, as before;
 * - otherwise the binary snapshot (`<Table>.arrow`), unless the table's `<Table>.csv` was edited
 *   since lexicons wrote it: its size differs from the manifest's record, or its mtime does and its
 *   CRC-32 too (a copy or a `touch` of an unchanged file is not an edit). An edited CSV file is
 *   loaded (and checked, as any CSV load) instead of the binary file, but only when the CSV files
 *   are of the binary snapshot's commit and no commit was logged after it (the server stopped
 *   cleanly after writing them): otherwise loading it would drop those commits, and ignoring it
 *   would drop the edit, so the start stops with an error saying what to do. After a start that
 *   loaded edits, a snapshot records the CSV files as they are, so the edit is loaded once;
 * - a missing CSV file is not an edit (the binary file holds the table; the CSV file is written
 *   again at shutdown). A table with neither file starts empty;
 * - a table the manifest names nowhere (a Model added since, the history tables switched on again)
 *   loads the files it has, as the state before the log (as in a folder without a manifest; there
 *   is no record to call them edited against): its CSV file (then recorded as it is), else its
 *   binary file (apache-arrow's reader, no checksum to check), else nothing.
 */
import { join } from 'node:path';
import { ErrorCode, LexiconsError } from '../errors.js';
import { loadTableFile } from './arrow-snapshot-load.js';
import { collectGarbage } from './collect-garbage.js';
import { exists } from './file-system.js';
import type { ArrowFileInfo } from './arrow-snapshot.js';
import { loadDataFolder, type LoadOptions, type LoadReport, type TableLoadReport } from './persist.js';
import type { Schema } from './schema.js';
import type { SharedStore } from './store.js';
import { ARROW_SUFFIX, csvUnchanged, readManifest, recordCsvFile, writeManifest, type CsvFileRecord, type Manifest } from './snapshot-manifest.js';

/** CSV rows loaded at start from which one full GC follows (below it the garbage is small). */
const GC_AFTER_CSV_ROWS = 10_000;

/** `expect`: the manifest's record of the binary file (null: a file the manifest does not name, read by apache-arrow's reader). */

export type TableSource = { readonly kind: 'arrow'; readonly file: string; readonly expect: ArrowFileInfo | null } | { readonly kind: 'csv' } | { readonly kind: 'empty' };

export interface SourcePlan {
  /** Per table of the schema. */
  readonly sources: ReadonlyMap<string, TableSource>;
  /** Tables whose CSV file was edited since lexicons wrote it (they load from it). */
  readonly editedCsv: readonly string[];
  /** Tables the manifest does not name that load from a CSV file ({@link recordUnnamedCsv} records it). */
  readonly unnamedCsv: readonly string[];
}

/**
 * Decides each table's source (see the module comment). Throws a CSV error when an edited CSV
 * file cannot be loaded without losing commits. `lastLoggedCommitId`: the log's highest commit id.
 */
export async function planSources(root: string, schema: Schema, manifest: Manifest | null, lastLoggedCommitId: number): Promise<SourcePlan> {
  const sources = new Map<string, TableSource>();
  if (manifest === null || manifest.version === 1) {
    for (const t of schema.tables) sources.set(t.name, { kind: 'csv' });
    return { sources, editedCsv: [], unnamedCsv: [] };
  }
  const edited: string[] = [];
  const unnamed: string[] = [];
  for (const t of schema.tables) {
    const recorded = manifest.csv?.tables[t.name];
    const binary = manifest.tables[t.name];
    if (!recorded && !binary) {
      const source = await unnamedSource(root, t.name);
      if (source.kind === 'csv') unnamed.push(t.name);
      sources.set(t.name, source);
    } else if (!(await csvUnchanged(join(root, `${t.name}.csv`), recorded))) {
      edited.push(t.name);
      sources.set(t.name, { kind: 'csv' });
    } else if (binary) sources.set(t.name, { kind: 'arrow', file: join(root, t.name + ARROW_SUFFIX), expect: binary });
    else sources.set(t.name, { kind: recorded ? 'csv' : 'empty' });
  }
  const csvCommit = manifest.csv?.commitId ?? null;
  const latest = Math.max(manifest.commitId, lastLoggedCommitId);
  if (edited.length > 0 && (csvCommit !== manifest.commitId || latest > manifest.commitId)) {
    const files = edited.map((t) => join(root, `${t}.csv`));
    const them = files.length > 1 ? 'them' : 'it';
    throw new LexiconsError(
      ErrorCode.CSV,
      `${files.join(', ')}: edited since lexicons wrote ${them} (size or time and checksum differ from snapshot.json), but commits up to ${latest} were made after that CSV save ` +
        `(the CSV files are of commit ${csvCommit ?? 'none'}; the server did not stop cleanly since): loading the edit would lose those commits, ignoring it would lose the edit. ` +
        `Move the edited file out of the data folder and start (the binary snapshot and the log hold the latest state, and the CSV files are written again at shutdown), then stop the server and make the edit again in the new CSV file.`,
    );
  }
  return { sources, editedCsv: edited, unnamedCsv: unnamed };
}

/** The source of a table the manifest does not name: whatever files of it the folder holds. */
async function unnamedSource(root: string, table: string): Promise<TableSource> {
  if (await exists(join(root, `${table}.csv`))) return { kind: 'csv' };
  const binary = join(root, table + ARROW_SUFFIX);
  return (await exists(binary)) ? { kind: 'arrow', file: binary, expect: null } : { kind: 'empty' };
}

/**
 * At start, after the load: adds the CSV files of tables the manifest did not name (loaded from
 * them) to its CSV record, as they are. From then on lexicons knows them: the binary file the next
 * snapshot writes wins over them after a crash, and only a later change is an edit. The record
 * keeps its commit id (0 when there was none: no edit is loaded before the next clean stop).
 */
export async function recordUnnamedCsv(root: string, plan: SourcePlan, load: LoadReport): Promise<void> {
  const manifest = await readManifest(root);
  if (plan.unnamedCsv.length === 0 || manifest === null || manifest.version !== 2) return;
  const tables: Record<string, CsvFileRecord> = { ...manifest.csv?.tables };
  for (const name of plan.unnamedCsv) {
    const rows = load.tables.find((t) => t.table === name)?.rows ?? 0;
    const record = await recordCsvFile(join(root, `${name}.csv`), rows);
    if (record) tables[name] = record;
  }
  await writeManifest(root, { ...manifest, csv: { commitId: manifest.csv?.commitId ?? 0, tables } });
}

/**
 * Loads every table from its planned source into a fresh store: the binary files straight into
 * shared memory, then the CSV tables through the CSV loader (reference order). The report lists
 * the tables in schema order.
 */
export async function loadSources(store: SharedStore, root: string, plan: SourcePlan, options: LoadOptions = {}): Promise<LoadReport> {
  const reports = new Map<string, TableLoadReport>();
  for (const t of store.schema.tables) {
    const source = plan.sources.get(t.name);
    if (source?.kind !== 'arrow') continue;
    const rows = loadTableFile(store, t, source.file, source.expect);
    reports.set(t.name, { table: t.name, source: 'arrow', file: source.file, legacyName: false, rows, addedFields: [], extraColumns: [], extraFile: null });
  }
  const csvTables = store.schema.tables.filter((t) => plan.sources.get(t.name)?.kind === 'csv').map((t) => t.name);
  const csv = await loadDataFolder(store, root, { ...options, tables: csvTables });
  for (const r of csv.tables) reports.set(r.table, r);
  // The parse garbage of a large load would stay in the heap of an idle server (collect-garbage.ts).
  if (csv.tables.reduce((n, r) => n + r.rows, 0) >= GC_AFTER_CSV_ROWS) collectGarbage();
  const tables = store.schema.tables.map((t) => reports.get(t.name) ?? { table: t.name, source: 'csv' as const, file: null, legacyName: false, rows: 0, addedFields: [], extraColumns: [], extraFile: null });
  return { dir: csv.dir, tables, removedTempFiles: csv.removedTempFiles };
}
