/**
 * @module storage/snapshot
 * Snapshots of a durable data folder: the binary snapshot files of every table at one commit id
 * (`<Table>.arrow`, Arrow IPC; arrow-snapshot.ts), the manifest `snapshot.json` naming that id
 * (snapshot-manifest.ts), and the rotation of the write-ahead log so that the segments the
 * snapshot covers can be deleted. At shutdown (and by `lexicons compact`) the CSV files, the open
 * format, are written too, at the same commit id. Also the periodic snapshot task.
 *
 * A snapshot, in order (a crash at any point leaves a folder that recovers to the full state):
 *  1. create the next log segment (header, fsync);
 *  2. under the commit lock: switch appends to it and take the snapshot id S (every record of the
 *     older segments has an id <= S, or was never published);
 *  3. a snapshot thread writes each table at S to `<Table>.arrow.next` (fsynced), reading the
 *     shared memory without a lock while calls go on;
 *  4. write the manifest with an `install` intent (S, the new segment, the files' sizes and CRCs);
 *  5. rename every `<Table>.arrow.next` over `<Table>.arrow`, fsync the folder;
 *  6. write the manifest {commitId: S, segment, tables} without the intent;
 *  7. delete the segments below the new one.
 * With `csv: true` (shutdown, compact), then:
 *  8. write each table at S to `<Table>.csv.next` (atomically);
 *  9. manifest with a `csvInstall` intent (their sizes, mtimes, CRCs);
 * 10. rename every `<Table>.csv.next` over `<Table>.csv`, fsync the folder;
 * 11. manifest with the CSV record, without the intent.
 * Before 4 (or 9), the old manifest and files are untouched (stale `.next` files are removed at
 * start); from 4 (or 9) on, recovery completes the renames itself (roll forward), so neither the
 * binary files nor the CSV files ever mix two snapshots.
 *
 * @example
 * const task = startSnapshotTask(store, wal, dir, { intervalMs: 60_000, onError: log });
 * // shutdown:
 * await task.stop();
 * await snapshotDataFolder(store, wal, dir, { csv: true }); // binary snapshot, then the CSV files
 * await wal.close();
 */
import { readdir, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCode, LexiconsError } from '../errors.js';
import { fsyncDir, writeFileAtomic } from './atomic-file.js';
import { tableCsvChunks } from './persist.js';
import type { TableSchema } from './schema.js';
import type { Txn } from './api.js';
import type { SharedStore } from './store.js';
import type { Wal } from './wal.js';
import { createSegment, segmentNumber } from './wal-format.js';
import { writeSnapshotFiles } from './snapshot-files.js';
import { ARROW_SUFFIX, NEXT_SUFFIX, readManifest, recordCsvFile, settled, writeManifest, type CsvFileRecord, type CsvRecord, type Manifest, type TableSnapshot } from './snapshot-manifest.js';

export { completeInterruptedSnapshot, MANIFEST_FILE, readManifest, type CsvRecord, type Manifest, type TableSnapshot } from './snapshot-manifest.js';

export type SnapshotPhase =
  | 'segment-created'
  | 'rotated'
  | 'table-written'
  | 'intent-written'
  | 'table-installed'
  | 'manifest-written'
  | 'done'
  | 'csv-written'
  | 'csv-intent-written'
  | 'csv-installed'
  | 'csv-done';

/** Test-only: awaited at each phase of a snapshot (crash tests kill the process there). */
export const snapshotTestHooks: { phase?: (phase: SnapshotPhase) => void | Promise<void> } = {};

export interface SnapshotOptions {
  /** Also write the CSV files at the snapshot's commit id (shutdown, compact). */
  readonly csv?: boolean;
  /**
   * Record the CSV files as they are now as the CSV at the snapshot's commit id (without writing
   * them): after a start that loaded a person's edits of them, so they are not loaded again.
   */
  readonly acceptCsv?: boolean;
}

export interface SnapshotReport {
  readonly dir: string;
  readonly commitId: number;
  readonly segment: number;
  /** The binary snapshot files written. */
  readonly tables: Readonly<Record<string, TableSnapshot>>;
  /** The CSV files written (`csv: true`), else null. */
  readonly csv: CsvRecord | null;
  /** Log segments deleted (covered by this snapshot). */
  readonly removedSegments: readonly string[];
  readonly ms: number;
  /** CPU time of the process while the binary files were written (all threads), ms. */
  readonly cpuMs: number;
}

/** Deletes the log segments numbered below `segment`; returns their names. */
export async function removeSegmentsBelow(dir: string, segment: number): Promise<string[]> {
  const removed: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const n = segmentNumber(name);
    if (n === null || n >= segment) continue;
    await unlink(join(dir, name));
    removed.push(name);
  }
  if (removed.length > 0) await fsyncDir(dir);
  return removed;
}

/** How long a snapshot tries to take the commit lock before it fails (and is retried later). */
const LOCK_PATIENCE_MS = 10_000;

/**
 * The commit lock for the main thread, without blocking it: try-lock, and while another thread
 * holds it, try again on later event-loop turns (setImmediate, then short timers).
 */
async function lockCommits(store: SharedStore): Promise<Txn> {
  const deadline = Date.now() + LOCK_PATIENCE_MS;
  for (let attempt = 0; ; attempt++) {
    const txn = store.tryBegin();
    if (txn) return txn;
    if (Date.now() > deadline) throw new LexiconsError(ErrorCode.TXN, `the commit lock stayed busy for ${LOCK_PATIENCE_MS} ms; the snapshot is retried later`);
    await new Promise<void>((done) => (attempt < 8 ? setImmediate(done) : setTimeout(done, Math.min(50, 2 ** (attempt - 8)))));
  }
}

/** Snapshots in flight per log: they run one after the other. */
const running = new WeakMap<Wal, Promise<unknown>>();

/**
 * Writes a snapshot of `store` to `dir` and deletes the log segments it covers (see the module
 * comment for the steps). Snapshots of one log run one at a time; a call made while one runs
 * waits for it and then takes its own. Main thread; never blocks the event loop (it try-locks the
 * commit lock to switch segments, and tries again later while a worker holds it; the binary files
 * are written by a thread of their own).
 */
export function snapshotDataFolder(store: SharedStore, wal: Wal, dir: string, options: SnapshotOptions = {}): Promise<SnapshotReport> {
  const previous = running.get(wal) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => snapshotOnce(store, wal, resolve(dir), options));
  running.set(wal, run.catch(() => undefined));
  return run;
}

const phase = async (p: SnapshotPhase): Promise<void> => {
  await snapshotTestHooks.phase?.(p);
};

/** The CSV files of `tables` as they are now, as a record at `commitId` (files that do not exist are left out). */
async function currentCsv(root: string, tables: readonly TableSchema[], commitId: number, rows: (table: string) => number): Promise<CsvRecord> {
  const records: Record<string, CsvFileRecord> = {};
  for (const t of tables) {
    const record = await recordCsvFile(join(root, `${t.name}.csv`), rows(t.name));
    if (record) records[t.name] = record;
  }
  return { commitId, tables: records };
}

async function snapshotOnce(store: SharedStore, wal: Wal, root: string, options: SnapshotOptions): Promise<SnapshotReport> {
  const started = Date.now();
  const old = await readManifest(root);
  const next = wal.segment + 1;
  await createSegment(root, next);
  await phase('segment-created');

  const txn = await lockCommits(store); // the commit lock: no append straddles the switch
  let commitId: number;
  try {
    wal.switchSegment(next);
    commitId = txn.snapshot;
  } finally {
    txn.abort();
  }
  // In the same synchronous step as the snapshot id: no reclamation moves a slot until the files
  // (binary and CSV) at commitId are written (reclaim.ts runs on this thread, between turns).
  const unpin = store.pinVersions();
  try {
    await phase('rotated');

    const cpu = process.cpuUsage();
    const files = Object.fromEntries(store.schema.tables.map((t) => [t.name, join(root, t.name + ARROW_SUFFIX + NEXT_SUFFIX)]));
    const tables = await writeSnapshotFiles({ handles: store.handles, snapshot: commitId, files });
    const used = process.cpuUsage(cpu);
    const cpuMs = Math.round((used.user + used.system) / 1000);
    for (let i = 0; i < store.schema.tables.length; i++) await phase('table-written');

    // The CSV record carried over: still right for every CSV file unchanged since it was written.
    // A folder coming from a CSV snapshot (version 1, or none) records its CSV files as they are.
    let csv: CsvRecord | null;
    if (options.acceptCsv) csv = await currentCsv(root, store.schema.tables, commitId, (t) => tables[t]?.rows ?? 0);
    else if (old === null || old.version === 1) csv = await currentCsv(root, store.schema.tables, old?.commitId ?? 0, (t) => old?.tables[t]?.rows ?? 0);
    else csv = old.csv;
    const createdAt = new Date().toISOString();
    const base: Manifest = old && old.version === 2 ? settled(old) : { format: 'lexicons-snapshot', version: 2, commitId: 0, segment: 0, createdAt, tables: {}, csv: null };
    await writeManifest(root, { ...base, version: 2, csv: base.csv, install: { commitId, segment: next, createdAt, tables, csv } });
    await phase('intent-written');

    for (const table of store.schema.tables) {
      await rename(files[table.name]!, join(root, table.name + ARROW_SUFFIX));
      await phase('table-installed');
    }
    await fsyncDir(root);
    let manifest: Manifest = { format: 'lexicons-snapshot', version: 2, commitId, segment: next, createdAt, tables, csv };
    await writeManifest(root, manifest);
    await phase('manifest-written');

    const removedSegments = await removeSegmentsBelow(root, next);
    await phase('done');
    const ms = Date.now() - started;
    if (!options.csv) return { dir: root, commitId, segment: next, tables, csv: null, removedSegments, ms, cpuMs };

    manifest = await writeCsvFiles(store, root, manifest);
    return { dir: root, commitId, segment: next, tables, csv: manifest.csv, removedSegments, ms: Date.now() - started, cpuMs };
  } finally {
    unpin();
  }
}

/** Steps 8-11: the CSV files at the manifest's commit id, installed with their own intent. */
async function writeCsvFiles(store: SharedStore, root: string, manifest: Manifest): Promise<Manifest> {
  const records: Record<string, CsvFileRecord> = {};
  for (const table of store.schema.tables) {
    const next = join(root, `${table.name}.csv${NEXT_SUFFIX}`);
    const count = { rows: 0 };
    let crc = 0;
    const chunks = async function* (): AsyncGenerator<Uint8Array> {
      for await (const text of tableCsvChunks(store, table, manifest.commitId, { chunkRows: 1000 }, count)) {
        const bytes = Buffer.from(text, 'utf8');
        crc = crc32(bytes, crc);
        yield bytes;
      }
    };
    await writeFileAtomic(next, chunks());
    records[table.name] = (await recordCsvFile(next, count.rows, crc))!;
  }
  await phase('csv-written');
  const csv: CsvRecord = { commitId: manifest.commitId, tables: records };
  await writeManifest(root, { ...manifest, csvInstall: csv });
  await phase('csv-intent-written');
  for (const table of store.schema.tables) await rename(join(root, `${table.name}.csv${NEXT_SUFFIX}`), join(root, `${table.name}.csv`));
  await fsyncDir(root);
  await phase('csv-installed');
  const done: Manifest = { ...manifest, csv };
  await writeManifest(root, done);
  await phase('csv-done');
  return done;
}

export interface SnapshotTaskOptions {
  /** Time between snapshots. */
  intervalMs: number;
  /** Called after each snapshot; a returned promise is awaited before the next snapshot can start. */
  onSnapshot?: (report: SnapshotReport) => void | Promise<void>;
  /** A failed snapshot leaves the folder as it was; it is reported here and tried again later. */
  onError?: (err: unknown) => void;
}

export interface SnapshotTask {
  /** Stops the timer and waits for a snapshot in flight. */
  stop(): Promise<void>;
}

/**
 * Main thread: snapshots every `intervalMs` (skipped when nothing was committed since the last
 * one). The timer does not keep the process alive.
 */
export function startSnapshotTask(store: SharedStore, wal: Wal, dir: string, options: SnapshotTaskOptions): SnapshotTask {
  const { intervalMs } = options;
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < 1) {
    throw new LexiconsError(ErrorCode.OPTION, 'options.intervalMs must be a positive number of milliseconds');
  }
  let last = -1;
  let inFlight: Promise<void> | null = null;
  const tick = (): void => {
    if (inFlight || store.snapshot() === last) return;
    inFlight = snapshotDataFolder(store, wal, dir)
      .then(async (report) => {
        last = report.commitId;
        await options.onSnapshot?.(report); // the next snapshot waits for it (its files stay as reported)
      })
      .catch((err: unknown) => options.onError?.(err))
      .finally(() => {
        inFlight = null;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
