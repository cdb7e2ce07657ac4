/**
 * @module storage/snapshot
 * Snapshots of a durable data folder: the CSV files of every table at one commit id, the manifest
 * `snapshot.json` naming that id, and the rotation of the write-ahead log so that the segments the
 * snapshot covers can be deleted. Also the periodic snapshot task.
 *
 * A snapshot, in order (a crash at any point leaves a folder that recovers to the full state):
 *  1. create the next log segment (header, fsync);
 *  2. under the commit lock: switch appends to it and take the snapshot id S (every record of the
 *     older segments has an id <= S, or was never published);
 *  3. write each table at S to `<Table>.csv.next` (atomically);
 *  4. write the manifest with an `install` intent (S, the new segment, the tables);
 *  5. rename every `<Table>.csv.next` over `<Table>.csv`, fsync the folder;
 *  6. write the manifest {commitId: S, segment} without the intent;
 *  7. delete the segments below the new one.
 * Before 4, the old manifest, CSV files and segments are untouched (stale `.next` files are removed
 * at start); from 4 on, recovery completes steps 5-6 itself (roll forward), so the CSV files never
 * mix two snapshots.
 *
 * @example
 * const task = startSnapshotTask(store, wal, dir, { intervalMs: 60_000, onError: log });
 * // shutdown:
 * await task.stop();
 * await snapshotDataFolder(store, wal, dir); // CSV at shutdown, as in the seed
 * await wal.close();
 */
import { readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { fsyncDir, writeFileAtomic } from './atomic-file.js';
import { ioError, isNotFound } from './file-system.js';
import { tableCsvChunks } from './persist.js';
import type { TableSchema } from './schema.js';
import type { Txn } from './api.js';
import type { SharedStore } from './store.js';
import type { Wal } from './wal.js';
import { createSegment, segmentNumber } from './wal-format.js';

export const MANIFEST_FILE = 'snapshot.json';
const NEXT_SUFFIX = '.csv.next';

export interface TableSnapshot {
  readonly rows: number;
  readonly bytes: number;
}

export interface Manifest {
  readonly format: 'lexicons-snapshot';
  readonly version: 1;
  /** Every commit with an id <= this is in the CSV files. */
  readonly commitId: number;
  /** The first log segment the snapshot does not cover (older ones may be deleted). */
  readonly segment: number;
  readonly createdAt: string;
  readonly tables: Readonly<Record<string, TableSnapshot>>;
  /** A snapshot being installed (its `.next` files are complete and fsynced). */
  readonly install?: { readonly commitId: number; readonly segment: number; readonly createdAt: string; readonly tables: Readonly<Record<string, TableSnapshot>> };
}

export type SnapshotPhase = 'segment-created' | 'rotated' | 'table-written' | 'intent-written' | 'table-installed' | 'manifest-written' | 'done';

/** Test-only: awaited at each phase of a snapshot (crash tests kill the process there). */
export const snapshotTestHooks: { phase?: (phase: SnapshotPhase) => void | Promise<void> } = {};

export interface SnapshotReport {
  readonly dir: string;
  readonly commitId: number;
  readonly segment: number;
  readonly tables: Readonly<Record<string, TableSnapshot>>;
  /** Log segments deleted (covered by this snapshot). */
  readonly removedSegments: readonly string[];
  readonly ms: number;
}

function malformed(file: string, what: string): LexiconsError {
  return new LexiconsError(ErrorCode.CSV, `${file}: ${what}; the data folder was changed by something other than lexicons (restore the file, or remove it to replay the whole log)`);
}

function checkTables(file: string, tables: unknown): void {
  if (typeof tables !== 'object' || tables === null) throw malformed(file, 'tables is not an object');
  for (const [name, t] of Object.entries(tables)) {
    const { rows, bytes } = (t ?? {}) as Partial<TableSnapshot>;
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(bytes)) throw malformed(file, `table ${name}: rows and bytes must be integers`);
  }
}

function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** The manifest of `dir`, or null when there is none (a folder never snapshotted, e.g. the seed's). */
export async function readManifest(dir: string): Promise<Manifest | null> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw ioError(`cannot read ${file}`, err);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw malformed(file, `not JSON (${messageOf(err)})`);
  }
  if (m?.format !== 'lexicons-snapshot' || m.version !== 1) throw malformed(file, 'not a lexicons snapshot manifest of version 1');
  if (!isId(m.commitId) || !isId(m.segment)) throw malformed(file, 'commitId and segment must be non-negative integers');
  checkTables(file, m.tables);
  if (m.install !== undefined) {
    if (!isId(m.install.commitId) || !isId(m.install.segment)) throw malformed(file, 'install.commitId and install.segment must be non-negative integers');
    checkTables(file, m.install.tables);
  }
  return m;
}

async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(join(dir, MANIFEST_FILE), [`${JSON.stringify(manifest, null, 2)}\n`]);
}

export interface InstallResult {
  readonly manifest: Manifest | null;
  /** An interrupted snapshot was completed (its `.next` files renamed into place). */
  readonly rolledForward: boolean;
  /** Stale `.csv.next` files of a snapshot interrupted before its intent, removed. */
  readonly removed: readonly string[];
}

/** At start: completes a snapshot interrupted after its intent, or removes the leftovers of one interrupted before. */
export async function completeInterruptedSnapshot(dir: string, manifest: Manifest | null): Promise<InstallResult> {
  if (manifest?.install) {
    const install = manifest.install;
    for (const table of Object.keys(install.tables)) {
      try {
        await rename(join(dir, table + NEXT_SUFFIX), join(dir, `${table}.csv`));
      } catch (err) {
        if (!isNotFound(err)) throw ioError(`cannot install ${table}${NEXT_SUFFIX}`, err);
      }
    }
    await fsyncDir(dir);
    const done: Manifest = { format: 'lexicons-snapshot', version: 1, commitId: install.commitId, segment: install.segment, createdAt: install.createdAt, tables: install.tables };
    await writeManifest(dir, done);
    return { manifest: done, rolledForward: true, removed: [] };
  }
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!name.endsWith(NEXT_SUFFIX)) continue;
    await unlink(join(dir, name));
    removed.push(name);
  }
  return { manifest, rolledForward: false, removed };
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

async function writeTable(store: SharedStore, table: TableSchema, file: string, snapshot: number): Promise<TableSnapshot> {
  const count = { rows: 0 };
  const { bytes } = await writeFileAtomic(file, tableCsvChunks(store, table, snapshot, { chunkRows: 1000 }, count));
  return { rows: count.rows, bytes };
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
 * commit lock to switch segments, and tries again later while a worker holds it).
 */
export function snapshotDataFolder(store: SharedStore, wal: Wal, dir: string): Promise<SnapshotReport> {
  const previous = running.get(wal) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => snapshotOnce(store, wal, resolve(dir)));
  running.set(wal, run.catch(() => undefined));
  return run;
}

async function snapshotOnce(store: SharedStore, wal: Wal, root: string): Promise<SnapshotReport> {
  const started = Date.now();
  const phase = async (p: SnapshotPhase) => {
    await snapshotTestHooks.phase?.(p);
  };
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
  await phase('rotated');

  const tables: Record<string, TableSnapshot> = {};
  for (const table of store.schema.tables) {
    tables[table.name] = await writeTable(store, table, join(root, table.name + NEXT_SUFFIX), commitId);
    await phase('table-written');
  }
  const createdAt = new Date().toISOString();
  const base: Manifest = old ?? { format: 'lexicons-snapshot', version: 1, commitId: 0, segment: 0, createdAt, tables: {} };
  await writeManifest(root, { ...base, install: { commitId, segment: next, createdAt, tables } });
  await phase('intent-written');

  for (const table of store.schema.tables) {
    await rename(join(root, table.name + NEXT_SUFFIX), join(root, `${table.name}.csv`));
    await phase('table-installed');
  }
  await fsyncDir(root);
  await writeManifest(root, { format: 'lexicons-snapshot', version: 1, commitId, segment: next, createdAt, tables });
  await phase('manifest-written');

  const removedSegments = await removeSegmentsBelow(root, next);
  await phase('done');
  return { dir: root, commitId, segment: next, tables, removedSegments, ms: Date.now() - started };
}

export interface SnapshotTaskOptions {
  /** Time between snapshots. */
  intervalMs: number;
  onSnapshot?: (report: SnapshotReport) => void;
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
      .then((report) => {
        last = report.commitId;
        options.onSnapshot?.(report);
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
