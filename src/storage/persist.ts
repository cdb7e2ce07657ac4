/**
 * @module storage/persist
 * The data folder: one `<Table>.csv` per table, loaded into the store at start and written from
 * it at shutdown. Loading also reads the original Python lexicons' files (pandas CSV, and the
 * snake_case names of its early versions such as `chat_message.csv`). Every write is atomic
 * (see atomic-file.ts). A file that fails to load is never overwritten: the failure is
 * remembered per store and folder, and a later save to that folder refuses to run. Columns the
 * Models no longer have are refused, or kept aside (extra-columns.ts).
 *
 * @example
 * const report = await loadDataFolder(store, 'data/', { unknownColumns: 'error' });
 * // ... serve ...
 * await saveDataFolder(store, 'data/');
 */
import { join, resolve } from 'node:path';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { Schema, TableSchema } from './schema.js';
import { cleanupStaleTempFiles, writeFileAtomic } from './atomic-file.js';
import { createDataFolder, exists } from './file-system.js';
import { writeExtraFile } from './extra-columns.js';
import { formatRecords, readCsvFile } from './csv.js';
import { decodeRecord, encodeRow, headerOf, planHeader, type Cell, type HeaderPlan } from './csv-codec.js';
import { BulkAppender } from './bulk-append.js';
import { SharedStore } from './store.js';

/** What persistence needs from the store (SharedStore satisfies it). */
export interface PersistableStore {
  readonly schema: Schema;
  bulkLoad(table: string, rows: Iterable<Record<string, unknown>>): number;
  scan(table: string, snapshot?: number): IterableIterator<{ pk: string } & Record<string, unknown>>;
  snapshot(): number;
}

export interface LoadOptions {
  /**
   * A column the Model no longer has: `'error'` (default) refuses to start, naming column and
   * file; `'keep'` loads the rest and preserves those columns (pk + values) in
   * `<Table>.extra.csv`, written atomically before anything is loaded.
   */
  unknownColumns?: 'error' | 'keep';
  /**
   * Rows per commit. Default 50,000 per `bulkLoad` call; 4,096 into an empty table, whose rows are
   * written straight into its slots (bulk-append.ts).
   */
  batchSize?: number;
  /** Only these tables are loaded (the others are left as they are and not reported). Default: all. */
  tables?: Iterable<string>;
}

export interface TableLoadReport {
  readonly table: string;
  /** Where the rows came from: a CSV file (or none), or a binary snapshot file (recovery.ts). */
  readonly source: 'csv' | 'arrow';
  /** The file read (absolute), or null when the table had no file (it starts empty). */
  readonly file: string | null;
  /** Whether `file` is a legacy snake_case name. */
  readonly legacyName: boolean;
  readonly rows: number;
  /** Model fields absent from the file; they got their defaults. */
  readonly addedFields: readonly string[];
  /** Columns the Model no longer has (only with `unknownColumns: 'keep'`). */
  readonly extraColumns: readonly string[];
  /** The side file holding the extra columns, when written. */
  readonly extraFile: string | null;
}

export interface LoadReport {
  readonly dir: string;
  readonly tables: readonly TableLoadReport[];
  /** Stale temp files of interrupted writes that were removed. */
  readonly removedTempFiles: readonly string[];
}

export interface SaveProgress {
  readonly table: string;
  readonly rows: number;
}

export interface SaveOptions {
  /**
   * Called every `progressEvery` rows while a table is written (and once at its end). A returned
   * promise is awaited before writing goes on.
   */
  onProgress?: (progress: SaveProgress) => void | Promise<void>;
  /** Default 100,000. */
  progressEvery?: number;
  /** Rows formatted per csv-stringify call. Default 1,000. */
  chunkRows?: number;
}

export interface TableSaveReport {
  readonly table: string;
  readonly file: string;
  readonly rows: number;
  readonly bytes: number;
}

export interface SaveReport {
  readonly dir: string;
  /** The commit id the files were written at (one snapshot for all tables). */
  readonly snapshot: number;
  readonly tables: readonly TableSaveReport[];
}

/** Per store, per resolved folder: tables that must not be overwritten, with the reason. */
const blocked = new WeakMap<PersistableStore, Map<string, Map<string, string>>>();

function optionError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, message);
}

function positiveInt(name: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw optionError(`options.${name} must be a positive integer`);
  return value;
}

function checkDir(dir: unknown): string {
  if (typeof dir !== 'string' || dir === '') throw optionError('dir must be a non-empty string');
  return resolve(dir);
}

/** `ChatMessage` → `chat_message` (and the naive `h_t_t_p_request` form for acronyms). */
export function legacyNames(table: string): string[] {
  const smart = table.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').toLowerCase();
  const naive = table.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
  return [...new Set([smart, naive])].filter((n) => n !== table).map((n) => `${n}.csv`);
}

/** Where start-up errors about the stored data vs the Models send people. */
export const MIGRATE_HINT = 'run `lexicons migrate --dry-run` to see how the stored data would be brought to the Models, then `lexicons migrate` to do it';

/** Referenced tables first, so references point at loaded rows (cycles keep schema order). */
export function loadOrder(schema: Schema): TableSchema[] {
  const out: TableSchema[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (t: TableSchema): void => {
    if (state.has(t.name)) return;
    state.set(t.name, 'visiting');
    for (const f of t.fields) {
      const target = f.ref === undefined ? undefined : schema.byName.get(f.ref);
      if (target && target !== t) visit(target);
    }
    state.set(t.name, 'done');
    out.push(t);
  };
  schema.tables.forEach(visit);
  return out;
}

/**
 * Loads every table of the store's schema from `dir`. A table without a file starts empty.
 * Stops at the first problem with a CSV LexiconsError naming file, line and column; the files
 * are only read, and the failed table and those not yet loaded are remembered so that
 * {@link saveDataFolder} refuses to overwrite them.
 */
export async function loadDataFolder(store: PersistableStore, dir: string, options: LoadOptions = {}): Promise<LoadReport> {
  const root = checkDir(dir);
  if (options === null || typeof options !== 'object') throw optionError('options must be an object');
  const unknownColumns = options.unknownColumns ?? 'error';
  if (unknownColumns !== 'error' && unknownColumns !== 'keep') throw optionError(`options.unknownColumns must be 'error' or 'keep'`);
  const batchSize = positiveInt('batchSize', options.batchSize, 0); // 0: the default of each path

  const only = options.tables === undefined ? null : new Set(options.tables);
  const order = loadOrder(store.schema).filter((t) => only === null || only.has(t.name));
  const reports: TableLoadReport[] = [];
  let removedTempFiles: string[] = [];
  let current = 0;
  try {
    removedTempFiles = await cleanupStaleTempFiles(root);
    for (; current < order.length; current++) {
      reports.push(await loadTable(store, root, order[current]!, unknownColumns, batchSize));
    }
  } catch (err) {
    const failures = new Map<string, string>();
    const reason = messageOf(err);
    order.slice(current).forEach((t, i) => failures.set(t.name, i === 0 ? reason : `not loaded (the load stopped at ${order[current]!.name})`));
    // Every table not loaded is protected, whatever stopped the load (even an I/O error before
    // the first file): saving the store now would replace its file with an empty table.
    let perDir = blocked.get(store);
    if (!perDir) blocked.set(store, (perDir = new Map()));
    perDir.set(root, failures);
    throw err;
  }
  blocked.get(store)?.delete(root);
  return { dir: root, tables: reports, removedTempFiles };
}

async function findFile(root: string, table: string): Promise<{ file: string; legacy: boolean } | null> {
  const main = join(root, `${table}.csv`);
  if (await exists(main)) return { file: main, legacy: false };
  for (const name of legacyNames(table)) {
    const file = join(root, name);
    if (await exists(file)) return { file, legacy: true };
  }
  return null;
}

async function loadTable(store: PersistableStore, root: string, table: TableSchema, unknownColumns: 'error' | 'keep', batchSize: number): Promise<TableLoadReport> {
  const found = await findFile(root, table.name);
  if (!found) return { table: table.name, source: 'csv', file: null, legacyName: false, rows: 0, addedFields: [], extraColumns: [], extraFile: null };
  const { file } = found;

  const plan = await readPlan(file, table);
  let extraFile: string | null = null;
  if (plan.extra.length > 0) {
    const names = plan.extra.map((c) => c.name).join(', ');
    if (unknownColumns === 'error') {
      throw new LexiconsError(
        ErrorCode.CSV,
        `${file}: column${plan.extra.length > 1 ? 's' : ''} ${names} not in Model ${table.name}; refusing to start so no data is dropped ` +
          `(${MIGRATE_HINT}, or add the field${plan.extra.length > 1 ? 's' : ''} back)`,
      );
    }
    extraFile = await writeExtraFile(root, table.name, plan);
  }

  let rows = 0;
  let batch: Record<string, unknown>[] = [];
  let lines: number[] = [];
  // Into an empty table (a start), rows go straight into the table's slots; otherwise bulkLoad.
  const appender = store instanceof SharedStore ? BulkAppender.forEmpty(store, table) : null;
  // Small commits keep the decoded rows young (measured: 4,096 rows per commit loads 1M rows ~15%
  // faster than 50,000, by garbage collection alone).
  const every = batchSize > 0 ? batchSize : appender ? 4096 : 50_000;
  const flush = (): void => {
    if (batch.length === 0) return;
    try {
      rows += appender ? appender.append(batch) : store.bulkLoad(table.name, batch);
    } catch (err) {
      throw new LexiconsError(ErrorCode.CSV, `${file}, ${whereInBatch(err, batch, lines)}: ${messageOf(err)}`, { cause: err });
    }
    batch = [];
    lines = [];
  };
  let header = true;
  await readCsvFile(
    file,
    (cells, line) => {
      if (header) {
        header = false;
        return;
      }
      try {
        batch.push(decodeRecord(plan, cells, line));
      } catch (err) {
        // A value of another type: the Model's field changed type since the data was written.
        throw new LexiconsError(ErrorCode.CSV, `${messageOf(err)} (if the field's type changed: ${MIGRATE_HINT})`, { cause: err });
      }
      lines.push(line);
      if (batch.length >= every) flush();
    },
    (i) => plan.header[i],
  );
  flush();
  return {
    table: table.name,
    source: 'csv',
    file,
    legacyName: found.legacy,
    rows,
    addedFields: plan.missing.map((f) => f.name),
    extraColumns: plan.extra.map((c) => c.name),
    extraFile,
  };
}

/**
 * Where a store error in a batch comes from: the row holding the duplicate pk or unique value
 * the store names (the last such row of the batch, the later occurrence), else the batch's lines.
 */
function whereInBatch(err: unknown, batch: readonly Record<string, unknown>[], lines: readonly number[]): string {
  const msg = err instanceof Error ? err.message : '';
  let field: string | undefined;
  let value: unknown;
  const dupPk = /a row with pk (.+) already exists/.exec(msg);
  const dupValue = /\.(\w+): value (.+) already exists/.exec(msg);
  if (dupPk) [field, value] = ['pk', dupPk[1]];
  else if (dupValue) {
    try {
      [field, value] = [dupValue[1], JSON.parse(dupValue[2]!)];
    } catch {
      field = undefined;
    }
  }
  if (field !== undefined) {
    for (let i = batch.length - 1; i >= 0; i--) if (batch[i]![field] === value) return `line ${lines[i]}, column ${field}`;
  }
  return `lines ${lines[0]}–${lines[lines.length - 1]}`;
}

async function readPlan(file: string, table: TableSchema): Promise<HeaderPlan> {
  let plan: HeaderPlan | undefined;
  await readCsvFile(file, (cells) => {
    plan = planHeader(file, table, cells);
    return false;
  });
  if (!plan) throw new LexiconsError(ErrorCode.CSV, `${file}, line 1: empty file (no header row)`);
  return plan;
}

/**
 * Writes every table of the store to `dir` as `<Table>.csv` (atomically, one snapshot for all
 * tables). Refuses with a CSV error, writing nothing, when a load from the same folder failed.
 */
export async function saveDataFolder(store: PersistableStore, dir: string, options: SaveOptions = {}): Promise<SaveReport> {
  const root = checkDir(dir);
  if (options === null || typeof options !== 'object') throw optionError('options must be an object');
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw optionError('options.onProgress must be a function');
  const progressEvery = positiveInt('progressEvery', options.progressEvery, 100_000);
  const chunkRows = positiveInt('chunkRows', options.chunkRows, 1_000);

  const failures = blocked.get(store)?.get(root);
  if (failures && failures.size > 0) {
    const list = [...failures].map(([t, why]) => `${t}: ${why}`).join('; ');
    throw new LexiconsError(ErrorCode.CSV, `refusing to save to ${root}: tables failed to load from it and their files would be overwritten (${list})`);
  }
  await createDataFolder(root);
  const snapshot = store.snapshot();
  const tables: TableSaveReport[] = [];
  for (const table of store.schema.tables) {
    const file = join(root, `${table.name}.csv`);
    const count = { rows: 0 };
    const onProgress = options.onProgress;
    const onRows = onProgress && ((rows: number) => onProgress({ table: table.name, rows }));
    const { bytes } = await writeFileAtomic(file, tableCsvChunks(store, table, snapshot, { chunkRows, progressEvery, onRows }, count));
    tables.push({ table: table.name, file, rows: count.rows, bytes });
  }
  return { dir: root, snapshot, tables };
}

/** How {@link tableCsvChunks} cuts a table into chunks and reports its progress. */
export interface TableCsvOptions {
  /** Records formatted per csv-stringify call. */
  readonly chunkRows: number;
  /** Called every `progressEvery` rows and once at the end; a returned promise is awaited. */
  readonly onRows?: ((rows: number) => void | Promise<void>) | undefined;
  readonly progressEvery?: number;
}

/**
 * The CSV text of `table` at `snapshot` (saves and snapshots): its header, then its rows in chunks
 * of `chunkRows` records. `count.rows` counts the rows as they are read.
 */
export async function* tableCsvChunks(store: PersistableStore, table: TableSchema, snapshot: number, options: TableCsvOptions, count: { rows: number }): AsyncGenerator<string> {
  yield formatRecords([headerOf(table)]);
  let records: Cell[][] = [];
  const every = options.progressEvery ?? Infinity;
  let nextProgress = every;
  for (const row of store.scan(table.name, snapshot)) {
    records.push(encodeRow(table, row));
    count.rows++;
    if (records.length >= options.chunkRows) {
      yield formatRecords(records);
      records = [];
    }
    if (count.rows >= nextProgress) {
      nextProgress += every;
      await options.onRows?.(count.rows);
    }
  }
  if (records.length > 0) yield formatRecords(records);
  await options.onRows?.(count.rows);
}
