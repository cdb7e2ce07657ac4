/**
 * @module storage/offline
 * `lexicons check` and `lexicons compact`: a data folder examined or compacted while no server
 * uses it.
 *
 * - {@link checkDataFolder} never writes. Without a schema it validates the manifest, the binary
 *   snapshot files' sizes and CRCs, and the log's framing and checksums; with the app's schema it
 *   also loads every table from the source a start would use (binary snapshot or CSV file) and
 *   replays the log into a scratch store, so everything a start would refuse is found.
 * - {@link compactDataFolder} recovers the folder (as a start would), writes a snapshot (binary
 *   and CSV files) and deletes the log.
 *
 * @example
 * const report = await checkDataFolder('data/', schema);
 * for (const line of report.problems) console.error(line);
 * process.exitCode = report.ok ? 0 : 1; // (in cli.ts)
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { ioError } from './file-system.js';
import { folderLockHolder } from './folder-lock.js';
import type { LoadOptions } from './persist.js';
import type { Schema } from './schema.js';
import { SharedStore } from './store.js';
import { listSegments, openDataFolder, planLog, replayLog, type LogPlan, type RecoveryReport } from './recovery.js';
import { MANIFEST_FILE, readManifest, removeSegmentsBelow, snapshotDataFolder, type Manifest, type SnapshotReport } from './snapshot.js';
import { ARROW_SUFFIX, crc32OfFile } from './snapshot-manifest.js';
import { loadSources, planSources } from './start-sources.js';
import { DISCARDED_SUFFIX, type SegmentScan } from './wal-format.js';

export interface CheckReport {
  readonly dir: string;
  /** True when a start would succeed (possibly after the repairs listed). */
  readonly ok: boolean;
  /** What would stop a start (malformed manifest or log, CSV errors, records the Models reject). */
  readonly problems: readonly string[];
  /** What a start would repair on its own (a torn log tail cut, an interrupted snapshot completed...). */
  readonly repairs: readonly string[];
  readonly manifest: Manifest | null;
  /** Every segment read (covered ones excluded), in order. */
  readonly segments: readonly SegmentScan[];
  /** Records a start would replay (null when not computed: no schema, or a problem first). */
  readonly replayable: number | null;
  /** Rows per table after recovery (with a schema and no problem). */
  readonly tables: Readonly<Record<string, number>> | null;
  /** The pid of a live process holding the folder's lock (a running server), or null. */
  readonly lockedBy: number | null;
}

/**
 * Checks the data folder `dir` without writing anything. With `schema`, the CSV files are loaded
 * and the log replayed into a scratch store (memory: the size of the data).
 */
export async function checkDataFolder(dir: string, schema?: Schema, options: { load?: LoadOptions } = {}): Promise<CheckReport> {
  if (typeof dir !== 'string' || dir === '') throw new LexiconsError(ErrorCode.OPTION, 'dir must be a non-empty string');
  const root = resolve(dir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    throw ioError(`cannot read data folder ${root}`, err);
  }
  const problems: string[] = [];
  const repairs: string[] = [];
  const lockedBy = await folderLockHolder(root);

  let manifest: Manifest | null = null;
  try {
    manifest = await readManifest(root);
  } catch (err) {
    problems.push(messageOf(err));
  }
  if (manifest === null && problems.length === 0 && names.some((n) => n.endsWith('.csv'))) repairs.push(`no ${MANIFEST_FILE}: the CSV files are taken as the state before the whole log`);
  if (manifest?.version === 1) repairs.push(`${MANIFEST_FILE} names a CSV snapshot (an earlier lexicons): the CSV files are loaded, and the next snapshot writes binary files`);
  const interrupted = manifest?.install !== undefined || manifest?.csvInstall !== undefined;
  if (manifest?.install) repairs.push(`a snapshot of commit ${manifest.install.commitId} was interrupted after its files were written: it will be completed`);
  if (manifest?.csvInstall) repairs.push(`the CSV files of commit ${manifest.csvInstall.commitId} were interrupted after they were written: they will be installed`);
  if (!interrupted) for (const n of names.filter((x) => x.endsWith('.csv.next') || x.endsWith('.arrow.next'))) repairs.push(`${n}: left by an interrupted snapshot, will be removed`);
  if (manifest?.version === 2 && !manifest.install) problems.push(...(await checkBinaryFiles(root, manifest)));

  const segments = await listSegments(root);
  for (const s of segments) if (manifest && s.n < manifest.segment) repairs.push(`${s.file}: covered by the snapshot, will be deleted`);
  let plan: LogPlan | null = null;
  if (problems.length === 0) {
    try {
      plan = await planLog(root, manifest?.segment ?? 0);
    } catch (err) {
      problems.push(messageOf(err));
    }
  }
  if (plan?.cut) {
    repairs.push(`${plan.cut.file}: ${plan.cut.reason}; ${plan.cut.fileBytes - plan.cut.validBytes} bytes will be cut off (never applied)`);
    for (const f of plan.after) repairs.push(`${f}: after the cut, will be set aside as ${f}${DISCARDED_SUFFIX} (never applied)`);
  }

  let replayable: number | null = null;
  let tables: Record<string, number> | null = null;
  if (schema && plan && problems.length === 0) {
    if (interrupted) {
      repairs.push('the snapshot files and log were not replayed: the interrupted snapshot is completed at the next start (or by compact)');
    } else {
      try {
        const lastCommitId = Math.max(manifest?.commitId ?? 0, plan.lastCommitId);
        const sources = await planSources(root, schema, manifest, lastCommitId);
        for (const t of sources.editedCsv) repairs.push(`${join(root, `${t}.csv`)}: edited since lexicons wrote it: a start loads it instead of the binary snapshot (checked here) and records it`);
        const store = SharedStore.create(schema, { initialCommitId: lastCommitId });
        await loadSources(store, root, sources, options.load);
        replayable = (await replayLog(store, plan, manifest?.commitId ?? 0)).replayed;
        tables = Object.fromEntries(Object.entries(store.stats().tables).map(([t, s]) => [t, s.rows]));
      } catch (err) {
        problems.push(messageOf(err));
      }
    }
  }
  return { dir: root, ok: problems.length === 0, problems, repairs, manifest, segments: plan?.segments ?? [], replayable, tables, lockedBy };
}

/** The binary snapshot files the manifest names, each checked for its size and CRC-32: the problems found. */
async function checkBinaryFiles(root: string, manifest: Manifest): Promise<string[]> {
  const problems: string[] = [];
  for (const [table, expect] of Object.entries(manifest.tables)) {
    const file = join(root, table + ARROW_SUFFIX);
    try {
      const size = (await stat(file)).size;
      const crc = size === expect.bytes ? (await crc32OfFile(file)) >>> 0 : null;
      if (size !== expect.bytes || crc !== expect.crc32 >>> 0) {
        problems.push(`${file}: the binary snapshot is torn or corrupt (${size} bytes${crc === null ? '' : `, CRC-32 ${crc}`}; ${MANIFEST_FILE} says ${expect.bytes} bytes, CRC-32 ${expect.crc32 >>> 0})`);
      }
    } catch (err) {
      problems.push(`${file}: the binary snapshot cannot be read: ${messageOf(err)}`);
    }
  }
  return problems;
}

export interface CompactReport {
  readonly recovery: RecoveryReport;
  readonly snapshot: SnapshotReport;
  /** Log segments deleted after the snapshot. */
  readonly removedSegments: readonly string[];
}

/**
 * Recovers `dir` (as a start would: torn tail cut, interrupted snapshot completed), writes a
 * snapshot of every table and deletes the log. Takes the folder's lock: refuses while a server
 * uses the folder.
 */
export async function compactDataFolder(dir: string, schema: Schema, options: { load?: LoadOptions } = {}): Promise<CompactReport> {
  const { store, wal, report } = await openDataFolder(schema, dir, { fsync: 'no', load: options.load });
  let ok = false;
  try {
    const snapshot = await snapshotDataFolder(store, wal, report.dir, { csv: true });
    // Nothing was committed since the snapshot (it is fsynced): the log left holds no record.
    const removed = await removeSegmentsBelow(report.dir, Number.MAX_SAFE_INTEGER);
    ok = true;
    return { recovery: report, snapshot, removedSegments: [...snapshot.removedSegments, ...removed] };
  } finally {
    await wal.close({ flush: !ok });
  }
}
