/**
 * @module bench/live
 * Live queries over `--rows` rows in buckets of 10 (an indexed field), against one server in this
 * process (`--workers`, default 2), with the clients in the same process. For each count of
 * `--queries` (default 1,000, 10,000 and 50,000; at most 64 per connection), one live query per
 * watched bucket, and each form side by side in the same run:
 * - `Bucket`: the incremental rows form; `BucketRerun`: the baseline, a general body re-run on
 *   every commit that touches it ("re-run every affected query on each commit"); `BucketTop`
 *   (top-k) at the first count only;
 * - commit-to-change latency p50/p99: a writer touches rows of watched buckets; each change frame
 *   carries the touch's send time in the row's label;
 * - CPU of the process per commit that touches one watched bucket, and per commit that touches a
 *   bucket nobody watches (flatness: the untouched figure must not grow with the number of queries);
 * - heap per live query (the heap difference after subscribing, over the queries, after a GC:
 *   run with --expose-gc; it includes the clients' copies, as they share the process).
 * Writes bench/results/live.json (`--out` another folder), the format bench/loadgen/report.ts
 * renders. `--quick` is a smoke run (100 and 400 queries over 5,000 rows); the lead runs the full size.
 *
 * Usage: node --expose-gc dist/bench/live.js [--quick] [--queries 1000,10000,50000] [--rows N] [--sockets N] [--commits N] [--workers N] [--out DIR]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { createClient, type Client, type LiveView } from '../src/client/index.js';
import { MAX_LIVE_QUERIES_PER_CONNECTION } from '../src/live-query.js';
import { server } from './app/live.js';
import { gitCommit, machineInfo, writeJson } from './loadgen/report.js';

process.env.LEXICONS_LOG ??= 'silent';
const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    queries: { type: 'string' },
    rows: { type: 'string' },
    sockets: { type: 'string' },
    commits: { type: 'string' },
    workers: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
const quick = values.quick === true;
const COUNTS = (values.queries ?? (quick ? '100,400' : '1000,10000,50000')).split(',').map(Number);
const ROWS = Number(values.rows ?? (quick ? 5_000 : 1_000_000));
const SOCKETS = Number(values.sockets ?? (quick ? 4 : 160));
const COMMITS = Number(values.commits ?? (quick ? 100 : 2_000));
const PER_BUCKET = 10;
const BUCKETS = Math.max(1, Math.floor(ROWS / PER_BUCKET));
if (COUNTS.some((n) => !(n >= 1) || n > BUCKETS - 1)) throw new Error(`--queries: each count must be 1 to ${BUCKETS - 1} (one watched bucket per query; one bucket stays unwatched)`);

type Form = 'Bucket' | 'BucketTop' | 'BucketRerun';
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

async function fill(writer: Client<typeof server>): Promise<void> {
  const step = Math.max(1, Math.floor(5_000 / PER_BUCKET));
  for (let from = 0; from < BUCKETS; from += step) await writer.call('Fill', { from, buckets: Math.min(step, BUCKETS - from), count: PER_BUCKET }, { timeoutMs: 600_000 });
}

/** Until the server holds `n` live queries (`/metrics` lexicons_live_queries): closed clients' queries end asynchronously. */
async function held(port: number, n: number): Promise<void> {
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (Number(/^lexicons_live_queries (\d+)/m.exec(text)?.[1]) === n) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One form with `queries` live queries (one per watched bucket): latency, CPU per touched and untouched commit, heap per query. */
async function run(port: number, name: Form, queries: number): Promise<Record<string, number | string>> {
  const url = `ws://127.0.0.1:${port}/`;
  await held(port, 0);
  const sockets = Math.max(SOCKETS, Math.ceil(queries / MAX_LIVE_QUERIES_PER_CONNECTION));
  const watched = queries; // buckets b0..b<queries-1>; the last bucket is never watched
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const clients = Array.from({ length: sockets }, () => createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 }));
  const writer = createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 });
  const latencies: number[] = [];
  const views: LiveView[] = [];
  for (let q = 0; q < queries; q++) {
    const view = clients[q % sockets]!.live(name, { bucket: `b${q}` }) as unknown as LiveView;
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
  await held(port, queries);
  global.gc?.();
  const heapPerQuery = (process.memoryUsage().heapUsed - heapBefore) / queries;
  const touch = async (bucket: number, i: number): Promise<void> => {
    await writer.call('Touch', { pk: `b${bucket}-${i % PER_BUCKET}`, bucket: `b${bucket}`, value: 1_000_000 + i, label: `t:${performance.timeOrigin + performance.now()}` });
  };
  const cpu = async (bucketOf: (i: number) => number): Promise<number> => {
    const start = process.cpuUsage();
    for (let i = 0; i < COMMITS; i++) await touch(bucketOf(i), i);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / COMMITS;
  };
  const touchedUs = await cpu((i) => i % watched);
  const untouchedUs = await cpu(() => BUCKETS - 1);
  latencies.sort((a, b) => a - b);
  await Promise.all([...clients, writer].map((c) => c.close()));
  return { p50_ms: round(pct(latencies, 50)), p99_ms: round(pct(latencies, 99)), changes: latencies.length, cpu_us_per_touched_commit: round(touchedUs, 1), cpu_us_per_untouched_commit: round(untouchedUs, 1), heap_bytes_per_query: Math.round(heapPerQuery), sockets };
}

const label = (n: number): string => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n));
const data = await mkdtemp(join(tmpdir(), 'lexicons-bench-live-'));
const running = await server.run({ appPath: fileURLToPath(import.meta.url.replace(/live\.js$/, 'app/live.js')), port: 0, host: '127.0.0.1', data, workers: Number(values.workers), handleSignals: false });
const load = loadavg()[0]!;
const figures: Record<string, Record<string, number | string>> = {};
try {
  const url = `ws://127.0.0.1:${running.port}/`;
  const writer = createClient<typeof server>({ url, WebSocket, timeoutMs: 600_000 });
  await fill(writer);
  writer.close();
  for (const [i, n] of COUNTS.entries()) {
    for (const form of ['Bucket', 'BucketRerun', ...(i === 0 ? ['BucketTop' as const] : [])] as const) {
      figures[`${form} ${label(n)}`] = await run(running.port, form, n);
      console.log(`${form} ${label(n)}: ${JSON.stringify(figures[`${form} ${label(n)}`])}`);
    }
  }
} finally {
  await running.stop();
  await rm(data, { recursive: true, force: true });
}
const ratios: Record<string, number | null> = {};
const first = label(COUNTS[0]!);
for (const n of COUNTS.map(label)) {
  const f = (form: string, key: string): number => Number(figures[`${form} ${n}`]?.[key]);
  ratios[`Bucket ${n} untouched cpu / Bucket ${first} untouched cpu`] = round(f('Bucket', 'cpu_us_per_untouched_commit') / Number(figures[`Bucket ${first}`]?.cpu_us_per_untouched_commit));
  ratios[`Bucket ${n} touched cpu / BucketRerun ${n} touched cpu`] = round(f('Bucket', 'cpu_us_per_touched_commit') / f('BucketRerun', 'cpu_us_per_touched_commit'));
}
const results = {
  workload: 'live',
  date: new Date().toISOString(),
  commit: gitCommit(ROOT),
  mode: quick ? 'quick' : 'full',
  machine: machineInfo(),
  config: { queries: COUNTS, rows: BUCKETS * PER_BUCKET, sockets: SOCKETS, commits: COMMITS, workers: Number(values.workers), gc: global.gc !== undefined },
  headline: 'cpu_us_per_untouched_commit',
  labels: {},
  figures,
  ratios,
  notes: [
    'Bucket: the incremental rows form; BucketRerun: the baseline, a general body re-run on every commit that touches it; BucketTop: the top-k form. The count is the number of live queries (one watched bucket each).',
    'The clients run in the server process: CPU and heap figures include theirs (heap_bytes_per_query counts the client copy of each result too).',
    `Load average at the start: ${load.toFixed(1)}${global.gc === undefined ? '; no --expose-gc: heap figures without a GC are noise' : ''}.`,
  ],
};
const outDir = values.out ?? join(ROOT, 'bench', 'results');
await mkdir(outDir, { recursive: true });
console.log(`wrote ${await writeJson(outDir, 'live', results)}`);
