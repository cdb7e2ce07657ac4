/**
 * @module storage/snapshot-manifest
 * `snapshot.json`, the manifest of a data folder: which binary snapshot is current (its commit id,
 * the first log segment it does not cover, each table's `<Table>.arrow` with its size and CRC-32),
 * which CSV files lexicons last wrote (their commit id, size, mtime and CRC-32: how a person's edit
 * is recognized), and the intent of an install in progress. Also the completion of an install
 * interrupted by a crash, at start.
 *
 * Version 1 manifests (written before binary snapshots) name a CSV snapshot: their CSV files are
 * the state at their commit id. They are read as such; the next snapshot writes version 2.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { ArrowFileInfo } from './arrow-snapshot.js';
import { fsyncDir, writeFileAtomic } from './atomic-file.js';
import { ioError, isNotFound } from './file-system.js';

export const MANIFEST_FILE = 'snapshot.json';
export const ARROW_SUFFIX = '.arrow';
export const NEXT_SUFFIX = '.next';

/** A table's binary snapshot file (version 2), or its CSV snapshot file (version 1: no crc32). */
export type TableSnapshot = ArrowFileInfo;

/** A CSV file as lexicons wrote it (or accepted a person's edit of it). */
export interface CsvFileRecord {
  readonly rows: number;
  readonly bytes: number;
  readonly mtimeMs: number;
  readonly crc32: number;
}

/** The CSV files lexicons last wrote, all at one commit id. */
export interface CsvRecord {
  readonly commitId: number;
  readonly tables: Readonly<Record<string, CsvFileRecord>>;
}

export interface SnapshotInstall {
  readonly commitId: number;
  readonly segment: number;
  readonly createdAt: string;
  readonly tables: Readonly<Record<string, TableSnapshot>>;
  /** The CSV record the installed manifest carries. */
  readonly csv: CsvRecord | null;
}

export interface Manifest {
  readonly format: 'lexicons-snapshot';
  /** 2: binary snapshot files; 1: the CSV files are the snapshot (written by an earlier lexicons). */
  readonly version: 1 | 2;
  /** Every commit with an id <= this is in the snapshot files. */
  readonly commitId: number;
  /** The first log segment the snapshot does not cover (older ones may be deleted). */
  readonly segment: number;
  readonly createdAt: string;
  /** Version 2: the `<Table>.arrow` files. Version 1: the `<Table>.csv` files (rows, bytes). */
  readonly tables: Readonly<Record<string, TableSnapshot>>;
  /** Version 2: the CSV files as lexicons last wrote them, or null when it never did. */
  readonly csv: CsvRecord | null;
  /** A binary snapshot being installed (its `.arrow.next` files are complete and fsynced). */
  readonly install?: SnapshotInstall;
  /** CSV files being installed (their `.csv.next` files are complete and fsynced). */
  readonly csvInstall?: CsvRecord;
}

function malformed(file: string, what: string): LexiconsError {
  return new LexiconsError(ErrorCode.CSV, `${file}: ${what}; the data folder was changed by something other than lexicons (restore the file, or remove it to replay the whole log)`);
}

function isId(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function checkTables(file: string, tables: unknown, version: 1 | 2): void {
  if (typeof tables !== 'object' || tables === null) throw malformed(file, 'tables is not an object');
  for (const [name, t] of Object.entries(tables)) {
    const { rows, bytes, crc32: crc } = (t ?? {}) as Partial<TableSnapshot>;
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(bytes)) throw malformed(file, `table ${name}: rows and bytes must be integers`);
    if (version === 2 && !Number.isSafeInteger(crc)) throw malformed(file, `table ${name}: crc32 must be an integer`);
  }
}

function checkCsv(file: string, csv: unknown): void {
  if (csv === null) return;
  const c = csv as Partial<CsvRecord>;
  if (typeof c !== 'object' || !isId(c.commitId) || typeof c.tables !== 'object' || c.tables === null) throw malformed(file, 'csv must be null or {commitId, tables}');
  for (const [name, t] of Object.entries(c.tables)) {
    const { rows, bytes, mtimeMs, crc32: crc } = (t ?? {}) as Partial<CsvFileRecord>;
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(bytes) || typeof mtimeMs !== 'number' || !Number.isSafeInteger(crc)) throw malformed(file, `csv table ${name}: rows, bytes, mtimeMs and crc32 must be numbers`);
  }
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
  if (m?.format !== 'lexicons-snapshot' || (m.version !== 1 && m.version !== 2)) throw malformed(file, 'not a lexicons snapshot manifest of version 1 or 2');
  if (!isId(m.commitId) || !isId(m.segment)) throw malformed(file, 'commitId and segment must be non-negative integers');
  checkTables(file, m.tables, m.version);
  if (m.install !== undefined) {
    if (!isId(m.install.commitId) || !isId(m.install.segment)) throw malformed(file, 'install.commitId and install.segment must be non-negative integers');
    checkTables(file, m.install.tables, m.version);
    if (m.version === 2) checkCsv(file, m.install.csv ?? null);
  }
  if (m.version === 2) {
    checkCsv(file, m.csv ?? null);
    if (m.csvInstall !== undefined) checkCsv(file, m.csvInstall);
  }
  return { ...m, csv: m.version === 2 ? (m.csv ?? null) : null };
}

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(join(dir, MANIFEST_FILE), [`${JSON.stringify(manifest, null, 2)}\n`]);
}

/** The manifest without its intents. */
export function settled(m: Manifest): Manifest {
  const { install: _install, csvInstall: _csvInstall, ...rest } = m;
  return rest;
}

export interface InstallResult {
  readonly manifest: Manifest | null;
  /** An interrupted snapshot (binary, or the CSV files of a shutdown) was completed. */
  readonly rolledForward: boolean;
  /** Stale `.next` files of a snapshot interrupted before its intent, removed. */
  readonly removed: readonly string[];
}

async function renameAll(dir: string, names: readonly string[], suffix: string): Promise<void> {
  for (const table of names) {
    try {
      await rename(join(dir, table + suffix + NEXT_SUFFIX), join(dir, table + suffix));
    } catch (err) {
      if (!isNotFound(err)) throw ioError(`cannot install ${table}${suffix}${NEXT_SUFFIX}`, err);
    }
  }
  await fsyncDir(dir);
}

/**
 * At start: completes a snapshot (binary files, or a shutdown's CSV files) interrupted after its
 * intent, and removes the `.next` files of one interrupted before.
 */
export async function completeInterruptedSnapshot(dir: string, found: Manifest | null): Promise<InstallResult> {
  let manifest = found;
  let rolledForward = false;
  if (manifest?.install) {
    const install = manifest.install;
    await renameAll(dir, Object.keys(install.tables), manifest.version === 1 ? '.csv' : ARROW_SUFFIX);
    manifest = { ...settled(manifest), commitId: install.commitId, segment: install.segment, createdAt: install.createdAt, tables: install.tables, csv: manifest.version === 2 ? install.csv : null };
    if (found?.csvInstall) manifest = { ...manifest, csvInstall: found.csvInstall };
    rolledForward = true;
  }
  if (manifest?.csvInstall) {
    await renameAll(dir, Object.keys(manifest.csvInstall.tables), '.csv');
    manifest = { ...settled(manifest), csv: manifest.csvInstall };
    rolledForward = true;
  }
  if (rolledForward) await writeManifest(dir, manifest!);
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!name.endsWith(`.csv${NEXT_SUFFIX}`) && !name.endsWith(`${ARROW_SUFFIX}${NEXT_SUFFIX}`)) continue;
    await unlink(join(dir, name));
    removed.push(name);
  }
  return { manifest, rolledForward, removed };
}

// -- CSV files: recorded, and recognized ---------------------------------------------------------

/** CRC-32 of a whole file, streamed. */
export async function crc32OfFile(path: string): Promise<number> {
  let crc = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) crc = crc32(chunk as Buffer, crc);
  return crc;
}

/** What the manifest records of a CSV file just written (or accepted); null when there is none. */
export async function recordCsvFile(path: string, rows: number, crc?: number): Promise<CsvFileRecord | null> {
  try {
    const s = await stat(path);
    return { rows, bytes: s.size, mtimeMs: s.mtimeMs, crc32: crc ?? (await crc32OfFile(path)) };
  } catch (err) {
    if (isNotFound(err)) return null;
    throw ioError(`cannot read ${path}`, err);
  }
}

/**
 * Whether the CSV file at `path` is still the one recorded: same size, and same mtime or (a copy,
 * a `touch`) same CRC-32. A missing file is "unchanged" (the binary snapshot holds the table).
 */
export async function csvUnchanged(path: string, record: CsvFileRecord | undefined): Promise<boolean> {
  let s;
  try {
    s = await stat(path);
  } catch (err) {
    if (isNotFound(err)) return true;
    throw ioError(`cannot read ${path}`, err);
  }
  if (record === undefined || s.size !== record.bytes) return false;
  if (s.mtimeMs === record.mtimeMs) return true;
  return (await crc32OfFile(path)) >>> 0 === record.crc32 >>> 0;
}
