/**
 * @module main/cluster-snapshot
 * The cluster's published snapshot (docs/cluster.md, "Rejoin from a snapshot"): the lease holder
 * publishes its latest local snapshot (the `<Table>.arrow` files its snapshot task wrote,
 * storage/arrow-snapshot.ts) to Redis with the commit record it covers; a node whose position is
 * below what the trimmed commit stream keeps installs it into its data folder, as a snapshot of
 * its own, and reads the stream from there.
 *
 * Redis: the hash `lexicons:snapshot`: `seq` (the last commit record the snapshot holds), `meta`
 * (JSON {@link PublishedSnapshot}) and each table's file in chunks of {@link CHUNK_BYTES}, fields
 * `<seq>/<table>/<i>`. A publication is written to `lexicons:snapshot:next:<node>` and renamed
 * over `lexicons:snapshot` only if its `seq` is higher (a Lua script: the published snapshot
 * never moves back, so a trim made below it stays valid). The whole snapshot lives in Redis's
 * memory, twice while a publication is renamed in: fine for tables of up to a few hundred MB.
 */
import { readFile, readdir, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import * as arrow from 'apache-arrow';
import type { Redis } from 'ioredis';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ArrowFileInfo } from '../storage/arrow-snapshot.js';
import { fsyncDir, writeFileAtomic } from '../storage/atomic-file.js';
import { CLUSTER_TABLE } from '../storage/cluster-record.js';
import { LOCK_FILE, LOCK_SOCKET } from '../storage/folder-lock.js';
import { ARROW_SUFFIX, writeManifest } from '../storage/snapshot-manifest.js';
import { fileColumnReader } from '../storage/uuid-values.js';

export const SNAPSHOT_KEY = 'lexicons:snapshot';
/** Bytes per hash field of a published table file. */
const CHUNK_BYTES = 8 << 20;
/** Where a rejoining node moves its folder's old files (the previous such folder is removed). */
export const REPLACED_DIR = 'replaced-by-rejoin';

/** What `meta` of the published snapshot says. */
export interface PublishedSnapshot {
  readonly node: string;
  /** The last commit record the snapshot holds. */
  readonly seq: number;
  /** The publisher's local commit id of the snapshot (becomes the installing node's). */
  readonly commitId: number;
  readonly createdAt: string;
  readonly tables: Readonly<Record<string, ArrowFileInfo & { chunks: number }>>;
}

/** The last commit record a snapshot's `lexicons_cluster.arrow` file holds (0: none). */
export async function snapshotSeq(dir: string): Promise<number> {
  const table = arrow.tableFromIPC(await readFile(join(dir, CLUSTER_TABLE + ARROW_SUFFIX)));
  const pkField = table.schema.fields.find((f) => f.name === 'pk');
  const pk = table.getChild('pk');
  const seq = table.getChild('seq');
  if (pkField === undefined || pk === null) return 0;
  // The file's pk column holds lexicons' compact keys (storage/uuid-values.ts): read them as strings.
  const pkOf = fileColumnReader(pkField, pk, (value) => value);
  for (let i = 0; i < table.numRows; i++) if (pkOf(i) === 'applied') return Number(seq?.get(i) ?? 0);
  return 0;
}

/** The `seq` of the published snapshot, 0 when none was published. */
export async function publishedSeq(redis: Redis): Promise<number> {
  return Number((await redis.hget(SNAPSHOT_KEY, 'seq')) ?? 0);
}

const SWAP_SCRIPT = `
local current = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if tonumber(ARGV[1]) > current then redis.call('RENAME', KEYS[1], KEYS[2]) return 1 end
redis.call('DEL', KEYS[1])
return 0`;

/**
 * Publishes the snapshot files of `dir` (the snapshot task's report: commit id and each table's
 * size and CRC-32) as covering record `seq`. False when a snapshot at or past `seq` is already
 * published, or a file changed since the report (a later snapshot replaced it: the next one is
 * published).
 */
export async function publishSnapshot(redis: Redis, nodeId: string, dir: string, snapshot: { commitId: number; tables: Readonly<Record<string, ArrowFileInfo>> }, seq: number): Promise<boolean> {
  if ((await publishedSeq(redis)) >= seq) return false;
  const next = `${SNAPSHOT_KEY}:next:${nodeId}`;
  await redis.del(next);
  const tables: Record<string, ArrowFileInfo & { chunks: number }> = {};
  for (const [table, info] of Object.entries(snapshot.tables)) {
    const bytes = await readFile(join(dir, table + ARROW_SUFFIX));
    if (bytes.byteLength !== info.bytes || crc32(bytes) >>> 0 !== info.crc32 >>> 0) {
      await redis.del(next);
      return false;
    }
    let chunks = 0;
    for (let at = 0; at < bytes.byteLength || chunks === 0; at += CHUNK_BYTES) await redis.hset(next, `${seq}/${table}/${chunks++}`, bytes.subarray(at, at + CHUNK_BYTES));
    tables[table] = { ...info, chunks };
  }
  const meta: PublishedSnapshot = { node: nodeId, seq, commitId: snapshot.commitId, createdAt: new Date().toISOString(), tables };
  await redis.hset(next, 'seq', String(seq), 'meta', JSON.stringify(meta));
  return (await redis.eval(SWAP_SCRIPT, 2, next, SNAPSHOT_KEY, String(seq))) === 1;
}

/** The published snapshot's files, read whole (retried when a newer publication replaced it meanwhile). */
async function download(redis: Redis): Promise<{ meta: PublishedSnapshot; files: Map<string, Buffer> }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const text = await redis.hget(SNAPSHOT_KEY, 'meta');
    if (text === null) throw new LexiconsError(ErrorCode.IO, `cluster: the commit stream was trimmed past this node's position and no snapshot is published (${SNAPSHOT_KEY} is missing): the node cannot catch up`);
    const meta = JSON.parse(text) as PublishedSnapshot;
    const files = new Map<string, Buffer>();
    let complete = true;
    for (const [table, info] of Object.entries(meta.tables)) {
      const parts: Buffer[] = [];
      for (let i = 0; i < info.chunks && complete; i++) {
        const part = await redis.hgetBuffer(SNAPSHOT_KEY, `${meta.seq}/${table}/${i}`);
        if (part === null) complete = false;
        else parts.push(part);
      }
      if (!complete) break;
      const bytes = Buffer.concat(parts);
      if (bytes.byteLength !== info.bytes || crc32(bytes) >>> 0 !== info.crc32 >>> 0) throw new LexiconsError(ErrorCode.IO, `cluster: the published snapshot's ${table} file is corrupt (size or CRC-32 differ from its meta)`);
      files.set(table, bytes);
    }
    if (complete) return { meta, files };
  }
  throw new LexiconsError(ErrorCode.IO, 'cluster: the published snapshot kept changing while it was read (5 attempts)');
}

/**
 * Moves the files of the (closed) data folder `dir` to `replaced-by-rejoin/` (the previous such
 * folder is removed), or, with `keepAside` (a rebuild's fresh files, the old ones already there),
 * removes them. The folder is empty then but for its lock files.
 */
export async function moveAside(dir: string, keepAside = false): Promise<string> {
  const aside = join(dir, REPLACED_DIR);
  if (!keepAside) {
    await rm(aside, { recursive: true, force: true });
    await mkdir(aside);
  }
  for (const name of await readdir(dir)) {
    if (name === REPLACED_DIR || name === LOCK_FILE || name === LOCK_SOCKET) continue;
    if (keepAside) await rm(join(dir, name), { recursive: true, force: true });
    else await rename(join(dir, name), join(aside, name));
  }
  await fsyncDir(dir);
  return aside;
}

/**
 * Installs the published snapshot as the data folder's (closed: no lock held) snapshot: the
 * folder's files move to `replaced-by-rejoin/` ({@link moveAside}, `keepAside` passed on), then
 * the tables' `.arrow` files and a manifest naming them are written. Opening the folder then
 * loads it like any snapshot.
 */
export async function installSnapshot(redis: Redis, dir: string, keepAside = false): Promise<PublishedSnapshot> {
  const { meta, files } = await download(redis);
  await moveAside(dir, keepAside);
  const tables: Record<string, ArrowFileInfo> = {};
  for (const [table, bytes] of files) {
    await writeFileAtomic(join(dir, table + ARROW_SUFFIX), [bytes]);
    const { rows, bytes: size, crc32: crc } = meta.tables[table]!;
    tables[table] = { rows, bytes: size, crc32: crc };
  }
  await writeManifest(dir, { format: 'lexicons-snapshot', version: 2, commitId: meta.commitId, segment: 1, createdAt: meta.createdAt, tables, csv: null });
  await fsyncDir(dir);
  return meta;
}
