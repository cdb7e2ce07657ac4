/**
 * @module storage/recovery
 * Opening a durable data folder at start: finish an interrupted snapshot, load every table from
 * its source (the binary snapshot, or a CSV file: start-sources.ts says which), replay the
 * write-ahead log after the snapshot, cut a torn or corrupt tail off, and start a new log segment.
 * Main thread, before the workers start.
 *
 * @example
 * const { store, wal, report } = await openDataFolder(schema, 'data/', { fsync: 'always' });
 * if (report.reason) log('RECOVERY', { cut: report.truncatedBytes, reason: report.reason });
 * // workers: SharedStore.attach(schema, store.handles); Wal.attach(store, wal.handles)
 */
import { open, readdir, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCode, isLexiconsError, LexiconsError, messageOf } from '../errors.js';
import { fsyncDir } from './atomic-file.js';
import { createDataFolder } from './file-system.js';
import { lockDataFolder } from './folder-lock.js';
import { hasHistory, historyFilesStale } from './history-tables.js';
import { MIGRATE_HINT, type LoadOptions, type LoadReport } from './persist.js';
import { coerceValue, isSystemTableName, withoutTransform, type Schema } from './schema.js';
import { SharedStore, type StoreOptions } from './store.js';
import type { Transaction } from './transaction.js';
import { completeInterruptedSnapshot, readManifest, removeSegmentsBelow, snapshotDataFolder, type Manifest } from './snapshot.js';
import { loadSources, planSources, recordUnnamedCsv } from './start-sources.js';
import { FSYNC_POLICIES, Wal, type FsyncPolicy } from './wal.js';
import { createSegment, DISCARDED_SUFFIX, logError, LogResolver, scanSegment, segmentNumber, segmentNumberOfAny, type SegmentScan, type WalRecord } from './wal-format.js';

export interface OpenOptions {
  /** When an acknowledged commit is on disk: `always`, `everysec` (default) or `no` (see wal.ts). */
  fsync?: FsyncPolicy;
  /** Options of the store created (its commit ids continue the log's: initialCommitId is set here). */
  store?: Omit<StoreOptions, 'initialCommitId'>;
  load?: LoadOptions;
  /** Failures of the background fsync (`everysec`); the log is then disabled (commits refused). */
  onError?: (err: unknown) => void;
  /**
   * `repair` (default): damaged channel history is repaired at open (`store.repairHistory`, a
   * local commit). `check`: nothing is committed; the channels a repair would change are in
   * `report.historyDamaged` (a cluster node rebuilds its folder from the cluster instead).
   */
  history?: 'repair' | 'check';
}

export interface RecoveryReport {
  readonly dir: string;
  /** The snapshot loaded: its commit id, or 0 for a folder never snapshotted. */
  readonly snapshotCommitId: number;
  /** An interrupted snapshot was completed before loading. */
  readonly rolledForward: boolean;
  /** Files of finished or abandoned snapshots removed (covered segments, stale `.next` files). */
  readonly removedFiles: readonly string[];
  /** What each table was loaded from (`source`: the binary snapshot or a CSV file). */
  readonly load: LoadReport;
  /** Tables whose CSV file a person edited while the server was stopped: loaded from it, then recorded by a snapshot. */
  readonly editedCsv: readonly string[];
  /** Every log segment read, in order. */
  readonly segments: readonly SegmentScan[];
  /** Commit records applied (those after the snapshot). */
  readonly replayed: number;
  /** Commit records already in the snapshot. */
  readonly skipped: number;
  /** Records cancelled (their writer died before publishing them). */
  readonly cancelled: number;
  /** Bytes cut off the log (a torn or corrupt tail), 0 when none. */
  readonly truncatedBytes: number;
  /** Why the log was cut, or null. */
  readonly reason: string | null;
  readonly truncatedFile: string | null;
  /** Segments after a corrupt record, renamed `*.discarded` (never replayed). */
  readonly discardedSegments: readonly string[];
  /** Highest commit id in the log (or the snapshot's); the store continues after it. */
  readonly lastLoggedCommitId: number;
  /** The store's commit id after recovery. */
  readonly commitId: number;
  /** The segment new commits are appended to. */
  readonly segment: number;
  /** Channels whose history was found incomplete and got a new epoch (history.ts repair). */
  readonly historyRepaired: readonly string[];
  /** `history: 'check'`: channels whose history a repair would change (nothing was repaired). */
  readonly historyDamaged: readonly string[];
}

// -- reading the log ---------------------------------------------------------------------------

export interface LogPlan {
  /** Segments to replay, in order, each read up to its good bytes. */
  readonly segments: readonly SegmentScan[];
  /** The first torn or corrupt record: where recovery cuts. */
  readonly cut: { readonly file: string; readonly validBytes: number; readonly fileBytes: number; readonly reason: string } | null;
  /** Segments after the cut (never replayed). */
  readonly after: readonly string[];
  readonly lastCommitId: number;
}

/** Log segment files of `dir`, in order. */
export async function listSegments(dir: string): Promise<Array<{ n: number; file: string }>> {
  const out: Array<{ n: number; file: string }> = [];
  for (const name of await readdir(dir)) {
    const n = segmentNumber(name);
    if (n !== null) out.push({ n, file: join(dir, name) });
  }
  return out.sort((a, b) => a.n - b.n);
}

/**
 * Reads the segments of `dir` numbered `from` or above, without writing: where the log must be
 * cut, and its last commit id.
 */
export async function planLog(dir: string, from = 0): Promise<LogPlan> {
  const segments: SegmentScan[] = [];
  const resolver = new LogResolver();
  let lastCommitId = 0;
  const list = (await listSegments(dir)).filter((s) => s.n >= from);
  for (let i = 0; i < list.length; i++) {
    const { file } = list[i]!;
    const scan = await scanSegment(file, (record) => {
      try {
        resolver.push(record);
      } catch (err) {
        throw logError(`${file}: ${messageOf(err)}; the log is not one lexicons wrote (segments mixed from another folder?)`);
      }
      lastCommitId = Math.max(lastCommitId, record.commitId);
    });
    if (scan.foreign) throw logError(`${file}: ${scan.problem}; move it out of the data folder`);
    segments.push(scan);
    if (scan.problem) {
      const cut = { file, validBytes: scan.validBytes, fileBytes: scan.fileBytes, reason: scan.problem };
      return { segments, cut, after: list.slice(i + 1).map((s) => s.file), lastCommitId };
    }
  }
  return { segments, cut: null, after: [], lastCommitId };
}

/** Cuts the log at the plan's cut (truncate + fsync), sets later segments aside, fsyncs the rest. */
async function applyCut(plan: LogPlan): Promise<string[]> {
  const discarded: string[] = [];
  if (plan.cut) {
    const fh = await open(plan.cut.file, 'r+');
    try {
      await fh.truncate(plan.cut.validBytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    for (const file of plan.after) {
      await rename(file, file + DISCARDED_SUFFIX);
      discarded.push(file + DISCARDED_SUFFIX);
    }
  }
  // What was replayed may only be in the page cache (a process crash): make it durable before
  // new commits are acknowledged on top of it.
  for (const s of plan.segments) {
    const fh = await open(s.file, 'r+');
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
  return discarded;
}

// -- replay ------------------------------------------------------------------------------------

/** Rows written per replay transaction. */
const REPLAY_BATCH = 10_000;

/**
 * Applies log records to a store in order, as blind writes (upsert = the full new row, delete by
 * pk), batched into exclusive transactions: unique constraints are checked on each batch's final
 * state, as the original commits were. Values are checked like CSV loads (no transforms).
 */
export class Replayer {
  readonly #store: SharedStore;
  readonly #after: number;
  #txn: Transaction | null = null;
  #rows = 0;
  replayed = 0;
  skipped = 0;

  /** Records with a commit id <= `after` are skipped (they are in the snapshot). */
  constructor(store: SharedStore, after: number) {
    this.#store = store;
    this.#after = after;
  }

  apply(record: WalRecord & { type: 'commit' }): void {
    if (record.commitId <= this.#after) {
      this.skipped++;
      return;
    }
    const where = `log record of commit ${record.commitId}`;
    const txn = (this.#txn ??= this.#store.begin({ exclusive: true }) as Transaction);
    for (const [name, tc] of Object.entries(record.tables)) {
      const t = this.#store.schema.byName.get(name);
      if (!t && isSystemTableName(name)) continue; // history kept while it was enabled: not kept now
      if (!t) throw logError(`${where}: table ${name} is not a Model (was it removed? ${MIGRATE_HINT})`);
      const id = txn.tableId(name);
      for (const pk of tc.deletes) {
        if (typeof pk !== 'string') throw logError(`${where}: ${name}: a deleted pk is not a string`);
        txn.put(id, pk, null);
      }
      for (const raw of tc.upserts) {
        const pk = raw.pk;
        if (typeof pk !== 'string' || pk === '') throw logError(`${where}: ${name}: a row without a pk`);
        for (const key of Object.keys(raw)) if (key !== 'pk' && !t.byName.has(key)) throw logError(`${where}: ${name}: field ${key} is not in the Model (was it removed? ${MIGRATE_HINT})`);
        const row: Record<string, unknown> & { pk: string } = { pk };
        for (const f of t.fields) {
          const g = withoutTransform(f);
          try {
            row[f.name] = raw[f.name] === undefined ? coerceValue(name, g, f.makeDefault()) : coerceValue(name, g, raw[f.name]);
          } catch (err) {
            if (!isLexiconsError(err)) throw err;
            throw new LexiconsError(err.code, `${where}: ${err.message} (if the field's type changed: ${MIGRATE_HINT})`, { cause: err });
          }
        }
        txn.put(id, pk, row);
      }
      this.#rows += tc.deletes.length + tc.upserts.length;
    }
    this.replayed++;
    if (this.#rows >= REPLAY_BATCH) this.flush();
  }

  /** Commits the pending batch. */
  flush(): void {
    const txn = this.#txn;
    if (!txn) return;
    this.#txn = null;
    this.#rows = 0;
    const result = txn.commit();
    if (!result.ok) throw logError(`replaying the log: ${result.message}`);
  }

  abort(): void {
    this.#txn?.abort();
    this.#txn = null;
  }
}

/** Replays the plan's segments (each up to its good bytes) into `store`, after commit `after`. */
export async function replayLog(store: SharedStore, plan: LogPlan, after: number): Promise<{ replayed: number; skipped: number; cancelled: number }> {
  const resolver = new LogResolver();
  const replayer = new Replayer(store, after);
  try {
    for (const s of plan.segments) {
      await scanSegment(s.file, (record, offset) => {
        if (offset >= s.validBytes) return; // past the cut (the file changed since the plan)
        for (const c of resolver.push(record)) replayer.apply(c);
      });
    }
    for (const c of resolver.finish()) replayer.apply(c);
    replayer.flush();
  } catch (err) {
    replayer.abort();
    throw err;
  }
  return { replayed: replayer.replayed, skipped: replayer.skipped, cancelled: resolver.cancelled };
}

// -- opening -----------------------------------------------------------------------------------

/** The segment after every segment file (including set-aside ones) and not below the manifest's. */
export async function nextSegmentNumber(dir: string, manifest: Manifest | null): Promise<number> {
  let n = Math.max(1, manifest?.segment ?? 0);
  for (const name of await readdir(dir)) {
    const m = segmentNumberOfAny(name);
    if (m !== null) n = Math.max(n, m + 1);
  }
  return n;
}

/**
 * Opens the data folder `dir` (created if missing) for a durable store: completes an interrupted
 * snapshot, loads the binary snapshot (or the CSV files: start-sources.ts), replays the log records
 * after the snapshot, cuts a torn or
 * corrupt tail off (reported, never applied), and starts a new segment. Returns the store (its
 * commit ids continue after the last logged one), the log bound to it (the everysec timer started)
 * and a report. Takes the folder's lock file until `wal.close()`.
 */
export async function openDataFolder(schema: Schema, dir: string, options: OpenOptions = {}): Promise<{ store: SharedStore; wal: Wal; report: RecoveryReport }> {
  if (typeof dir !== 'string' || dir === '') throw new LexiconsError(ErrorCode.OPTION, 'dir must be a non-empty string');
  const policy = options.fsync ?? 'everysec';
  if (!FSYNC_POLICIES.includes(policy)) throw new LexiconsError(ErrorCode.OPTION, `options.fsync must be one of ${FSYNC_POLICIES.join(', ')}`);
  const check = options.history === 'check';
  if (!check && options.history !== undefined && options.history !== 'repair') throw new LexiconsError(ErrorCode.OPTION, "options.history must be 'repair' or 'check'");
  const root = resolve(dir);
  await createDataFolder(root);
  const release = await lockDataFolder(root);
  try {
    const install = await completeInterruptedSnapshot(root, await readManifest(root));
    const manifest = install.manifest;
    const snapshotCommitId = manifest?.commitId ?? 0;
    const covered = manifest ? await removeSegmentsBelow(root, manifest.segment) : [];
    const plan = await planLog(root, manifest?.segment ?? 0);
    const discarded = await applyCut(plan);
    const lastLoggedCommitId = Math.max(snapshotCommitId, plan.lastCommitId);

    const sources = await planSources(root, schema, manifest, lastLoggedCommitId);

    const store = SharedStore.create(schema, { ...options.store, initialCommitId: lastLoggedCommitId });
    const load = await loadSources(store, root, sources, options.load);
    await recordUnnamedCsv(root, sources, load);
    const replay = await replayLog(store, plan, snapshotCommitId);

    const segment = await nextSegmentNumber(root, manifest);
    await createSegment(root, segment);
    await fsyncDir(root);
    const wal = Wal.create(root, policy, segment, release);
    wal.bind(store);
    let historyRepaired: string[] = [];
    let historyDamaged: string[] = [];
    try {
      // A person's edit of a CSV file was loaded: record the files as they are now with a
      // snapshot, before any commit, so that the next start loads the binary snapshot again.
      if (sources.editedCsv.length > 0) await snapshotDataFolder(store, wal, root, { acceptCsv: true });
      // Logged (after bind): a crash right after start finds the same epochs.
      if (hasHistory(schema)) {
        const renewEpochs = historyFilesStale(manifest, load);
        if (check) historyDamaged = store.repairHistory({ renewEpochs, dryRun: true });
        else historyRepaired = store.repairHistory({ renewEpochs });
      }
    } catch (err) {
      await wal.close({ flush: false }); // releases the folder's lock too
      throw err;
    }
    wal.startTimer((err) => options.onError?.(err));
    const report: RecoveryReport = {
      dir: root,
      snapshotCommitId,
      rolledForward: install.rolledForward,
      removedFiles: [...install.removed, ...covered],
      load,
      editedCsv: sources.editedCsv,
      segments: plan.segments,
      ...replay,
      truncatedBytes: plan.cut ? plan.cut.fileBytes - plan.cut.validBytes : 0,
      reason: plan.cut?.reason ?? null,
      truncatedFile: plan.cut?.file ?? null,
      discardedSegments: discarded,
      lastLoggedCommitId,
      commitId: store.snapshot(),
      segment,
      historyRepaired,
      historyDamaged,
    };
    return { store, wal, report };
  } catch (err) {
    await release();
    throw err;
  }
}
