/**
 * @module bench/storage
 * Storage engine throughput and memory, side by side in one run:
 * - create / get-by-pk / get-by-unique-field / indexed filter (channel equality + substring) /
 *   full filter scan (unindexed substring over every message), one transaction per operation,
 *   with 1 and 2 worker threads on one shared store (ratio 2t/1t = scaling);
 * - memory per row of 1,000,000 ChatMessage rows in the shared store vs the same rows as plain JS
 *   objects in a Map, each measured in its own child process with forced GC (ratio store/map);
 * - memory per 1,000 channel history items of 100 bytes (one publication per commit): all
 *   retained, and trimmed to the last 1,000 (what trimmed publications leave behind until a restart).
 * Writes bench/results/storage.json.
 *
 * Usage: node dist/bench/storage.js [--quick]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread } from 'node:worker_threads';
import { PUBLICATION_TABLE, CHANNEL_TABLE, withHistory } from '../src/storage/history-tables.js';
import { Model, compileSchema, field } from '../src/storage/schema.js';
import { SharedStore } from '../src/storage/store.js';

export class BenchUser extends Model {
  static override table = 'User';
  static email = field.str({ unique: true });
  static age = field.int();
}

export class BenchMessage extends Model {
  static override table = 'ChatMessage';
  static author = field.ref(() => BenchUser);
  static channel = field.str({ dictionary: true, index: true });
  static content = field.str();
  static timestamp = field.float();
}

export const benchSchema = () => compileSchema([BenchUser, BenchMessage]);

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKER = new URL('./storage-worker.js', import.meta.url);

interface Sizes {
  users: number;
  messages: number;
  creates: number;
  gets: number;
  scans: number;
  memoryRows: number;
}

const FULL: Sizes = { users: 100_000, messages: 100_000, creates: 40_000, gets: 200_000, scans: 200, memoryRows: 1_000_000 };
const QUICK: Sizes = { users: 10_000, messages: 10_000, creates: 2_000, gets: 20_000, scans: 40, memoryRows: 100_000 };
/** Publications in the history memory figures (one per commit). */
const HISTORY_ITEMS = 100_000;

type MemoryKind = 'store' | 'map' | 'history' | 'history-trimmed';

/** A flat copy of a string (slices and concatenations keep extra objects alive and skew the Map figure). */
function flat(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** ~40 characters. */
function content(k: number): string {
  return flat(`message ${k} lorem ipsum dolor sit amet, consec`.slice(0, 40));
}

function message(k: number, authors: readonly string[], channels: readonly string[]): Record<string, unknown> {
  return { pk: flat(randomUUID()), author: authors[k % authors.length]!, channel: channels[k % channels.length]!, content: content(k), timestamp: 1.7e12 + k };
}

function* chunks<T>(total: number, size: number, make: (k: number) => T): Generator<T[]> {
  for (let k = 0; k < total; k += size) yield Array.from({ length: Math.min(size, total - k) }, (_, j) => make(k + j));
}

function seededStore(sizes: Sizes, messages: number): SharedStore {
  const store = SharedStore.create(benchSchema());
  for (const chunk of chunks(sizes.users, 10_000, (k) => ({ email: `user${k}@example.com`, age: k % 90 }))) store.bulkLoad(BenchUser, chunk);
  const authors = [...store.scan(BenchUser)].slice(0, 1000).map((u) => u.pk);
  const channels = Array.from({ length: 16 }, (_, i) => `channel-${i}`);
  for (const chunk of chunks(messages, 10_000, (k) => message(k, authors, channels))) store.bulkLoad(BenchMessage, chunk);
  return store;
}

/** Best of `repeat` runs: on a shared machine the best run is the least disturbed one. */
async function bestOf(repeat: number, run: () => Promise<{ opsPerSec: number; warmMs: number }>): Promise<{ opsPerSec: number; warmMs: number }> {
  let best = await run();
  for (let i = 1; i < repeat; i++) {
    const r = await run();
    if (r.opsPerSec > best.opsPerSec) best = r;
  }
  return best;
}

async function runThreads(store: SharedStore, op: string, total: number, threads: number, users: number): Promise<{ opsPerSec: number; warmMs: number }> {
  const gate = new SharedArrayBuffer(8);
  const g = new Int32Array(gate);
  const per = Math.floor(total / threads);
  const results = Array.from({ length: threads }, (_, t) => {
    const worker = new Worker(WORKER, { workerData: { handles: store.handles, gate, op, n: per, offset: t * per, users } });
    return new Promise<{ elapsed: number; warmMs: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => code !== 0 && reject(new Error(`bench worker exited with ${code}`)));
    });
  });
  for (;;) {
    const seen = Atomics.load(g, 0);
    if (seen >= threads) break;
    const w = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync(g, 0, seen);
    if (w.async) await w.value;
  }
  Atomics.store(g, 1, 1);
  Atomics.notify(g, 1);
  const done = await Promise.all(results);
  const elapsed = Math.max(...done.map((d) => d.elapsed));
  return { opsPerSec: Math.round((per * threads) / (elapsed / 1000)), warmMs: Math.round(Math.max(...done.map((d) => d.warmMs))) };
}

/**
 * `rows` publications of 100 bytes to one channel, one per commit (each also writes a version of
 * the channel row), through Txn.publish; `trimmed` keeps only the last 1,000 (size policy).
 */
export function publishHistory(rows: number, trimmed: boolean): { store: SharedStore; shared: number } {
  const store = SharedStore.create(withHistory(benchSchema()));
  store.historyPolicy = () => ({ size: trimmed ? 1000 : rows });
  for (let k = 0; k < rows; k++) {
    const txn = store.begin();
    txn.publish('channel-0', flat(`{"ChatMessage":{"content":"${String(k).padStart(8, '0')} lorem ipsum dolor sit amet, consectetur adipisc"}}`.slice(0, 100)));
    if (!txn.commit().ok) throw new Error('publish commit failed');
  }
  store.history('channel-0', { after: rows - 1 }); // this thread's indexes, as a reader has them
  const t = store.stats().tables;
  return { store, shared: t[PUBLICATION_TABLE]!.bytes + t[CHANNEL_TABLE]!.bytes };
}

/** Child-process mode: build `rows` messages (or history items) one way, report memory deltas after forced GC. */
function measureMemory(kind: MemoryKind, rows: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const authors = Array.from({ length: 1000 }, () => flat(randomUUID()));
  const channels = Array.from({ length: 16 }, (_, i) => `channel-${i}`);
  gc();
  gc();
  const before = process.memoryUsage();
  let keep: unknown;
  let shared = 0;
  if (kind === 'history' || kind === 'history-trimmed') {
    const built = publishHistory(rows, kind === 'history-trimmed');
    shared = built.shared;
    keep = built.store;
  } else if (kind === 'store') {
    const store = SharedStore.create(benchSchema());
    for (const chunk of chunks(rows, 10_000, (k) => message(k, authors, channels))) store.bulkLoad(BenchMessage, chunk);
    shared = store.stats().tables.ChatMessage!.bytes;
    keep = store;
  } else {
    const map = new Map<string, Record<string, unknown>>();
    for (let k = 0; k < rows; k++) {
      const row = message(k, authors, channels);
      map.set(row.pk as string, row);
    }
    keep = map;
  }
  gc();
  gc();
  const after = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      kind,
      rows,
      rssPerRow: (after.rss - before.rss) / rows,
      // JS heap + ordinary ArrayBuffers (the indexes' Int32Arrays); growable SharedArrayBuffers
      // are not counted by memoryUsage() and are reported as `shared` (allocated bytes).
      heapPerRow: (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / rows,
      sharedPerRow: shared / rows,
      alive: keep !== undefined,
    }),
  );
}

function childMemory(kind: MemoryKind, rows: number): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--memory', kind, '--rows', String(rows)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out) as Record<string, number>;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const memIdx = args.indexOf('--memory');
  if (memIdx >= 0) {
    measureMemory(args[memIdx + 1] as MemoryKind, Number(args[args.indexOf('--rows') + 1]));
    return;
  }
  const quick = args.includes('--quick');
  const sizes = quick ? QUICK : FULL;
  // Other processes skew thread scaling on a small machine: wait (bounded) for a quiet one.
  const quietBy = Date.now() + (quick ? 0 : 120_000);
  while (loadavg()[0]! > cpus().length * 0.5 && Date.now() < quietBy) await delay(2000);
  const loadAtStart = loadavg()[0]!;
  const figures: Record<string, Record<string, number>> = {};
  const ratios: Record<string, number> = {};

  const readStore = seededStore(sizes, sizes.messages);
  for (const threads of [1, 2]) {
    const repeat = quick ? 1 : 3;
    const ops = {
      create: await bestOf(repeat, () => runThreads(seededStore(sizes, 0), 'create', sizes.creates, threads, sizes.users)),
      getPk: await bestOf(repeat, () => runThreads(readStore, 'getPk', sizes.gets, threads, sizes.users)),
      getUnique: await bestOf(repeat, () => runThreads(readStore, 'getUnique', sizes.gets, threads, sizes.users)),
      indexFilter: await bestOf(repeat, () => runThreads(readStore, 'indexFilter', sizes.scans * 10, threads, sizes.users)),
      scan: await bestOf(repeat, () => runThreads(readStore, 'scan', sizes.scans, threads, sizes.users)),
    };
    for (const [op, r] of Object.entries(ops)) {
      figures[op] ??= {};
      figures[op]![`threads${threads}OpsPerSec`] = r.opsPerSec;
      if (op === 'scan') figures[op]![`threads${threads}RowsPerSec`] = r.opsPerSec * sizes.messages;
      figures[op]![`threads${threads}WarmMs`] = r.warmMs;
    }
  }
  for (const op of Object.keys(figures)) ratios[`${op}2tOver1t`] = round(figures[op]!.threads2OpsPerSec! / figures[op]!.threads1OpsPerSec!);

  const store = childMemory('store', sizes.memoryRows);
  const map = childMemory('map', sizes.memoryRows);
  // Comparable figure: bytes the data costs after GC. Store: shared buffers (allocated, incl.
  // growth slack) + this thread's derived indexes on the heap; Map: the JS heap. RSS deltas are
  // reported too but include allocator slack from loading.
  const storeBytes = store.sharedPerRow! + store.heapPerRow!;
  figures.memory = {
    rows: sizes.memoryRows,
    storeBytesPerRow: round(storeBytes),
    storeSharedBytesPerRow: round(store.sharedPerRow!),
    storeIndexHeapBytesPerRowPerThread: round(store.heapPerRow!),
    storeRssBytesPerRow: round(store.rssPerRow!),
    mapBytesPerRow: round(map.heapPerRow!),
    mapRssBytesPerRow: round(map.rssPerRow!),
  };
  ratios.memoryStoreOverMap = round(storeBytes / map.heapPerRow!);
  ratios.memoryStoreOverMapRss = round(store.rssPerRow! / map.rssPerRow!);
  // Three threads reading the same rows: one shared copy + three indexes, vs three Maps.
  ratios.memoryStoreOverMap3Threads = round((store.sharedPerRow! + 3 * store.heapPerRow!) / (3 * map.heapPerRow!));

  // Channel history: bytes per 1,000 items of 100 bytes (shared buffers allocated + this thread's indexes).
  const items = quick ? HISTORY_ITEMS / 10 : HISTORY_ITEMS;
  const kept = childMemory('history', items);
  const trimmed = childMemory('history-trimmed', items);
  figures.historyMemory = {
    items,
    retainedSharedBytesPer1000: round(kept.sharedPerRow! * 1000),
    retainedIndexHeapBytesPer1000PerThread: round(kept.heapPerRow! * 1000),
    retainedRssBytesPer1000: round(kept.rssPerRow! * 1000),
    trimmedTo1000SharedBytesPer1000Published: round(trimmed.sharedPerRow! * 1000),
    trimmedTo1000RssBytesPer1000Published: round(trimmed.rssPerRow! * 1000),
  };

  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout: keep 'unknown'
  }
  const result = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', totalMemBytes: totalmem(), node: process.version, platform: `${process.platform}-${process.arch}`, loadAvgAtStart: round(loadAtStart), loadAvgAtEnd: round(loadavg()[0]!) },
    date: new Date().toISOString(),
    commit,
    quick,
    sizes,
    figures,
    ratios,
  };
  mkdirSync(new URL('bench/results/', pathToFileURL(ROOT)), { recursive: true });
  writeFileSync(new URL('bench/results/storage.json', pathToFileURL(ROOT)), JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify({ figures, ratios }, null, 2) + '\n');
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

if (isMainThread && process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
