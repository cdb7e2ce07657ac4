/**
 * @module bench/live
 * Live queries: `--queries` live queries (default 10,000) over `--rows` rows in buckets, held by
 * `--sockets` connections, against one server in this process (`--workers`, default 2):
 * - commit-to-change latency p50/p99: a writer touches rows of watched buckets; each change frame
 *   carries the touch's send time in the row's label;
 * - CPU of the process per commit touching one watched bucket vs a bucket nobody watches (flat in
 *   the untouched ones: the index skips them);
 * - main-thread heap per live query (after subscribing, after a GC when --expose-gc);
 * - the same run with the incremental rows form (`Bucket`), the top-k form (`BucketTop`) and the
 *   re-run general form (`BucketRerun`), side by side.
 * `--quick` is a smoke run (a few hundred queries); the lead runs the full size. Prints JSON.
 *
 * Usage: node [--expose-gc] dist/bench/live.js [--quick] [--queries N] [--rows N] [--sockets N] [--commits N] [--workers N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { createClient, type Client, type LiveView } from '../src/client/index.js';
import { server } from './app/live.js';

process.env.LEXICONS_LOG ??= 'silent';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    queries: { type: 'string' },
    rows: { type: 'string' },
    sockets: { type: 'string' },
    commits: { type: 'string' },
    workers: { type: 'string', default: '2' },
  },
});
const quick = values.quick === true;
const QUERIES = Number(values.queries ?? (quick ? 200 : 10_000));
const ROWS = Number(values.rows ?? (quick ? 2_000 : 1_000_000));
const SOCKETS = Number(values.sockets ?? (quick ? 4 : 160));
const COMMITS = Number(values.commits ?? (quick ? 100 : 2_000));
const PER_BUCKET = 10;
const BUCKETS = Math.max(1, Math.floor(ROWS / PER_BUCKET));
const WATCHED = Math.min(BUCKETS - 1, QUERIES); // bucket b0..; the last bucket is never watched

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

async function fill(writer: Client<typeof server>): Promise<void> {
  const step = Math.max(1, Math.floor(5_000 / PER_BUCKET));
  for (let from = 0; from < BUCKETS; from += step) await writer.call('Fill', { from, buckets: Math.min(step, BUCKETS - from), count: PER_BUCKET }, { timeoutMs: 600_000 });
}

async function run(url: string, name: 'Bucket' | 'BucketTop' | 'BucketRerun'): Promise<Record<string, number | string>> {
  const clients = Array.from({ length: SOCKETS }, () => createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 }));
  const writer = createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 });
  const latencies: number[] = [];
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const views: LiveView[] = [];
  for (let q = 0; q < QUERIES; q++) {
    const view = clients[q % SOCKETS]!.live(name, { bucket: `b${q % WATCHED}` }) as unknown as LiveView;
    view.on((e) => {
      if (e.type !== 'change') return;
      for (const row of [...(e.inserted ?? []), ...(e.updated ?? [])]) {
        const sent = Number(String(row.label ?? '').split(':')[1]);
        if (sent > 0) latencies.push(performance.timeOrigin + performance.now() - sent);
      }
    });
    views.push(view);
  }
  await Promise.all(views.map((v) => v.ready));
  global.gc?.();
  const heapPerQuery = (process.memoryUsage().heapUsed - heapBefore) / QUERIES;
  const touch = async (bucket: number, i: number): Promise<void> => {
    await writer.call('Touch', { pk: `b${bucket}-${i % PER_BUCKET}`, bucket: `b${bucket}`, value: 1_000_000 + i, label: `t:${performance.timeOrigin + performance.now()}` });
  };
  const cpu = async (bucketOf: (i: number) => number): Promise<number> => {
    const start = process.cpuUsage();
    for (let i = 0; i < COMMITS; i++) await touch(bucketOf(i), i);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / COMMITS;
  };
  const touchedUs = await cpu((i) => i % WATCHED);
  const untouchedUs = await cpu(() => BUCKETS - 1);
  latencies.sort((a, b) => a - b);
  for (const c of [...clients, writer]) c.close();
  return { form: name, p50Ms: round(pct(latencies, 50)), p99Ms: round(pct(latencies, 99)), changes: latencies.length, cpuUsPerTouchedCommit: round(touchedUs, 1), cpuUsPerUntouchedCommit: round(untouchedUs, 1), mainHeapBytesPerQuery: Math.round(heapPerQuery) };
}

const data = await mkdtemp(join(tmpdir(), 'lexicons-bench-live-'));
const running = await server.run({ appPath: fileURLToPath(import.meta.url.replace(/live\.js$/, 'app/live.js')), port: 0, host: '127.0.0.1', data, workers: Number(values.workers), handleSignals: false });
try {
  const url = `ws://127.0.0.1:${running.port}/`;
  const writer = createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 });
  await fill(writer);
  writer.close();
  const results = [];
  for (const form of ['Bucket', 'BucketTop', 'BucketRerun'] as const) results.push(await run(url, form));
  console.log(JSON.stringify({ queries: QUERIES, rows: BUCKETS * PER_BUCKET, sockets: SOCKETS, commits: COMMITS, workers: Number(values.workers), results }, null, 2));
} finally {
  await running.stop();
  await rm(data, { recursive: true, force: true });
}
