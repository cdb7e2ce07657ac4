/**
 * @module storage/migrate
 * `lexicons migrate`: brings a stopped server's data folder to the Models the app declares now.
 *
 * {@link planMigration} compares the stored data (migrate-read.ts) with the schema, per Model:
 * - added fields (no stored column): every row gets the field's default;
 * - removed columns (stored, no field): dropped, with how many rows held a value;
 * - renamed fields: a field declared `field.str({ was: 'old' })` takes the stored column `old`;
 * - type changes: lexicons stores no field types, so a change shows in the values: each stored
 *   value is read as the field's kind (a CSV cell decoded, a logged value checked and otherwise
 *   decoded from its text); values that do not convert are listed with row, column and value;
 * - tables no Model declares any more (kept in the backup, dropped from the folder).
 *
 * {@link applyMigration} refuses when a value would not convert (nothing is changed); otherwise it
 * copies the folder's files to `backups/migrate-<time>/` (fsynced), loads the converted rows into
 * a store with the new schema and writes it as a snapshot through the snapshot protocol
 * (snapshot.ts: `.next` files, an install intent in the manifest, renames; a crash at any point
 * leaves the old data or the new, never a mix), which deletes the log it covers.
 */
import { copyFile, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { fsyncDir } from './atomic-file.js';
import { decodeCell, encodeCell } from './csv-codec.js';
import { lockDataFolder } from './folder-lock.js';
import { readStoredData, type StoredData, type StoredValue } from './migrate-read.js';
import { loadOrder } from './persist.js';
import { nextSegmentNumber } from './recovery.js';
import { coerceValue, isSystemTableName, withoutTransform, type FieldKind, type FieldSchema, type Schema } from './schema.js';
import { completeInterruptedSnapshot, readManifest, snapshotDataFolder, type SnapshotReport } from './snapshot.js';
import { SharedStore } from './store.js';
import { Wal } from './wal.js';
import { createSegment } from './wal-format.js';

/** A stored value that would not convert to its field's kind. */
export interface ValueProblem {
  readonly table: string;
  readonly pk: string;
  /** The stored column (the field's former name for a rename). */
  readonly column: string;
  readonly field: string;
  readonly kind: FieldKind;
  /** The value as stored (CSV text or JSON). */
  readonly value: string;
  readonly reason: string;
}

export interface TablePlan {
  readonly table: string;
  readonly rows: number;
  readonly added: ReadonlyArray<{ readonly field: string; readonly default: unknown }>;
  readonly removed: ReadonlyArray<{ readonly column: string; readonly values: number }>;
  readonly renamed: ReadonlyArray<{ readonly from: string; readonly to: string }>;
  /** Fields with values stored in another kind's form: how many convert. */
  readonly retyped: ReadonlyArray<{ readonly field: string; readonly kind: FieldKind; readonly converted: number }>;
}

export interface MigrationPlan {
  readonly dir: string;
  readonly tables: readonly TablePlan[];
  readonly removedTables: ReadonlyArray<{ readonly table: string; readonly rows: number }>;
  readonly problems: readonly ValueProblem[];
  /** True when the stored data already matches the Models. */
  readonly upToDate: boolean;
}

/** A store row (pk + fields) per Model table, as the migrated folder will hold it. */
export type MigratedRows = Map<string, Array<Record<string, unknown>>>;

function show(v: StoredValue): string {
  return 'cell' in v ? (v.cell === null ? '(empty)' : JSON.stringify(v.cell)) : JSON.stringify(v.json);
}

/** A logged value's CSV text (as its own kind would have written it), to decode as another kind. */
function textOf(json: unknown): string | null {
  if (json === null || json === undefined) return null;
  if (typeof json === 'string') return json;
  if (typeof json === 'boolean') return json ? 'True' : 'False';
  if (typeof json === 'number') return String(json);
  return JSON.stringify(json);
}

/** The value of `v` for field `f`, and whether it was stored in another kind's form; throws when it does not convert. */
function convert(table: string, f: FieldSchema, v: StoredValue): { value: unknown; changed: boolean } {
  if ('cell' in v) {
    const value = decodeCell(f, v.cell);
    return { value, changed: v.cell !== null && encodeCell(f, value) !== v.cell };
  }
  try {
    return { value: coerceValue(table, withoutTransform(f), v.json), changed: false };
  } catch {
    const cell = textOf(v.json);
    return { value: decodeCell(f, cell), changed: cell !== null };
  }
}

/** Compares `stored` with `schema`: the plan, and the rows the folder will hold (when no problem). */
export function planMigration(stored: StoredData, schema: Schema): { plan: MigrationPlan; rows: MigratedRows } {
  const tables: TablePlan[] = [];
  const problems: ValueProblem[] = [];
  const rows: MigratedRows = new Map();
  for (const t of schema.tables) {
    const data = stored.tables.get(t.name);
    if (!data) continue;
    const columns = new Set(data.columns);
    const source = new Map<string, string>(); // field -> stored column
    const renamed: Array<{ from: string; to: string }> = [];
    for (const f of t.fields) {
      if (columns.has(f.name)) source.set(f.name, f.name);
      else {
        const old = f.was?.find((w) => columns.has(w));
        if (old !== undefined) {
          source.set(f.name, old);
          renamed.push({ from: old, to: f.name });
        }
      }
    }
    const used = new Set(source.values());
    const added = t.fields.filter((f) => !source.has(f.name)).map((f) => ({ field: f.name, default: f.makeDefault() }));
    const removed = data.columns
      .filter((c) => !used.has(c))
      .map((column) => ({ column, values: [...data.rows.values()].filter((r) => { const v = r.get(column); return v !== undefined && show(v) !== '(empty)' && show(v) !== 'null'; }).length }));
    const converted = new Map<string, number>();
    const out: Array<Record<string, unknown>> = [];
    for (const [pk, stored] of data.rows) {
      const row: Record<string, unknown> = { pk };
      for (const f of t.fields) {
        const column = source.get(f.name);
        const v = column === undefined ? undefined : stored.get(column);
        if (v === undefined) {
          row[f.name] = f.makeDefault();
          continue;
        }
        try {
          const { value, changed } = convert(t.name, f, v);
          row[f.name] = value;
          if (changed) converted.set(f.name, (converted.get(f.name) ?? 0) + 1);
        } catch (err) {
          problems.push({ table: t.name, pk, column: column!, field: f.name, kind: f.kind, value: show(v), reason: messageOf(err) });
        }
      }
      out.push(row);
    }
    for (const a of added) {
      const f = t.byName.get(a.field)!;
      if (f.unique && a.default !== null && out.length > 1) {
        problems.push({ table: t.name, pk: String(out[1]!.pk), column: a.field, field: a.field, kind: f.kind, value: JSON.stringify(a.default), reason: 'the field is unique and every row would get this default (give it a nullable or per-row default)' });
      }
    }
    rows.set(t.name, out);
    const retyped = [...converted].map(([field, n]) => ({ field, kind: t.byName.get(field)!.kind, converted: n }));
    tables.push({ table: t.name, rows: out.length, added, removed, renamed, retyped });
  }
  // The channel history tables (lexicons_*) are read and carried like any table when the app keeps
  // history; when it does not any more, their files stay (a start that turns history on again
  // loads them, as it would without a migration): never planned as dropped.
  const removedTables = [...stored.tables.values()].filter((d) => !schema.byName.has(d.name) && !isSystemTableName(d.name)).map((d) => ({ table: d.name, rows: d.rows.size }));
  const upToDate = removedTables.length === 0 && tables.every((t) => t.added.length + t.removed.length + t.renamed.length + t.retyped.length === 0);
  return { plan: { dir: stored.dir, tables, removedTables, problems, upToDate }, rows };
}

/** Exact refusal message: every value that would not convert (the first 20), by row, column and value. */
export function refusalMessage(problems: readonly ValueProblem[]): string {
  const lines = problems.slice(0, 20).map((p) => `  ${p.table} row ${p.pk}, column ${p.column}${p.column === p.field ? '' : ` (field ${p.field})`}: ${p.value} does not convert to ${p.kind}: ${p.reason}`);
  if (problems.length > 20) lines.push(`  ... and ${problems.length - 20} more`);
  return `${problems.length} stored value${problems.length > 1 ? 's' : ''} would not convert to the Models; nothing was changed (fix the rows, e.g. with lexicons shell --write under the old Models, or change the Models):\n${lines.join('\n')}`;
}

export interface MigrationResult {
  readonly plan: MigrationPlan;
  /** The copy of the folder taken before anything changed (null when up to date). */
  readonly backup: string | null;
  readonly snapshot: SnapshotReport | null;
}

/** Copies the folder's files (not its subfolders or lock) into `backups/migrate-<time>/`, fsynced. */
async function backupFolder(root: string): Promise<string> {
  const backups = join(root, 'backups');
  const dir = join(backups, `migrate-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(dir, { recursive: true });
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isFile() || entry.name.startsWith('lexicons.lock') || entry.name.endsWith('.tmp')) continue;
    const target = join(dir, entry.name);
    await copyFile(join(root, entry.name), target);
    const fh = await open(target, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  await fsyncDir(dir);
  await fsyncDir(backups);
  await fsyncDir(root);
  return dir;
}

/**
 * Plans and applies the migration of `dir` to `schema` under the folder's lock (refused while a
 * server holds it). Throws SCHEMA with {@link refusalMessage} when a value would not convert.
 */
export async function applyMigration(dir: string, schema: Schema): Promise<MigrationResult> {
  const root = resolve(dir);
  let release: (() => Promise<void>) | null = await lockDataFolder(root);
  try {
    await completeInterruptedSnapshot(root, await readManifest(root)); // as a start does first
    const stored = await readStoredData(root, schema.tables.map((t) => t.name));
    const { plan, rows } = planMigration(stored, schema);
    if (plan.problems.length > 0) throw new LexiconsError(ErrorCode.SCHEMA, refusalMessage(plan.problems));
    if (plan.upToDate) return { plan, backup: null, snapshot: null };
    const backup = await backupFolder(root);
    const store = SharedStore.create(schema, { initialCommitId: Math.max(stored.manifest?.commitId ?? 0, stored.plan.lastCommitId) });
    for (const t of loadOrder(schema)) {
      const list = rows.get(t.name);
      if (!list || list.length === 0) continue;
      try {
        store.bulkLoad(t.name, list);
      } catch (err) {
        throw new LexiconsError(ErrorCode.SCHEMA, `the migrated rows of ${t.name} are refused: ${messageOf(err)}; nothing was changed (backup: ${backup})`, { cause: err });
      }
    }
    const segment = await nextSegmentNumber(root, stored.manifest);
    await createSegment(root, segment);
    await fsyncDir(root);
    const wal = Wal.create(root, 'always', segment, release);
    release = null; // the log releases the lock when it closes
    wal.bind(store);
    let snapshot: SnapshotReport;
    try {
      snapshot = await snapshotDataFolder(store, wal, root, { csv: true }); // the binary files, then the CSV files
    } finally {
      await wal.close();
    }
    // In the backup; a Model of that name added later must not find the old rows.
    for (const { table } of plan.removedTables) {
      for (const file of [`${table}.csv`, `${table}.arrow`]) await unlink(join(root, file)).catch(() => undefined);
    }
    await fsyncDir(root);
    return { plan, backup, snapshot };
  } finally {
    await release?.();
  }
}
