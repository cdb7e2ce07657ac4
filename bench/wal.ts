/**
 * @module bench/wal
 * Write throughput cost of the write-ahead log's fsync policies: writer threads commit small
 * transactions (one ChatMessage each, ~120 bytes of log) back to back for a fixed time, each
 * commit acknowledged as the runtime does it (`wal.awaitDurable()` after the commit). Policies
 * `always`, `everysec`, `no` and a baseline without any log, with 1 and 2 writer threads, side by
 * side in one run (interleaved rounds, median kept). Writes bench/results/wal.json with commits/s,
 * latency percentiles, fsyncs per commit and ratios to the baseline and to `no`.
 *
 * Usage: node dist/bench/wal.js [--quick] [--seconds S] [--rounds N] [--dir DIR] [--out DIR]
 *   --dir: where the data folders go (default: the OS temp folder; put it on the disk to measure)
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { writeFileAtomic } from '../src/storage/atomic-file.js';
import { openDataFolder } from '../src/storage/recovery.js';
import { Model, compileSchema, field } from '../src/storage/schema.js';
import { SharedStore, type StoreHandles } from '../src/storage/store.js';
import { Wal, type FsyncPolicy, type WalHandles } from '../src/storage/wal.js';
import { gitCommit, machineInfo } from './loadgen/report.js';

class ChatMessage extends Model {
  static author = field.str();
  static channel = field.str({ dictionary: true, index: true });
  static content = field.str();
  static timestamp = field.float();
}
const schema = compileSchema([ChatMessage]);

type Mode = FsyncPolicy | 'memory';
const MODES: readonly Mode[] = ['memory', 'no', 'everysec', 'always'];
const THREADS = [1, 2] as const;

interface WriterData {
  handles: StoreHandles;
  wal: WalHandles | null;
  gate: SharedArrayBuffer;
  ms: number;
  prefix: string;
}

interface WriterResult {
  commits: number;
  /** Commit + acknowledgement latencies in microseconds, sorted. */
  latencies: number[];
}

/** Worker: commits until the time is up, acknowledging each commit like the runtime. */
function writer(data: WriterData): WriterResult {
  const store = SharedStore.attach(schema, data.handles);
  const wal = data.wal ? Wal.attach(store, data.wal) : null;
  const gate = new Int32Array(data.gate);
  Atomics.add(gate, 0, 1);
  Atomics.notify(gate, 0);
  while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);
  const latencies: number[] = [];
  const end = performance.now() + data.ms;
  let i = 0;
  for (let now = performance.now(); now < end; ) {
    const n = i++;
    store.runSync((db) => db.create(ChatMessage, { author: `user-${n % 100}`, channel: 'general', content: `message ${n} from ${data.prefix}: the quick brown fox`, timestamp: Date.now() / 1000 }));
    wal?.awaitDurable();
    const t = performance.now();
    latencies.push((t - now) * 1000);
    now = t;
  }
  return { commits: i, latencies: latencies.sort((a, b) => a - b) };
}

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

interface Figures {
  commits_per_s: number;
  p50_us: number;
  p99_us: number;
  fsyncs_per_commit: number;
}

async function runOnce(base: string, mode: Mode, threads: number, ms: number): Promise<Figures> {
  const dir = await mkdtemp(join(base, `lexicons-bench-wal-${mode}-`));
  try {
    const { store, wal } = await openDataFolder(schema, dir, { fsync: mode === 'memory' ? 'no' : mode, store: { initialRows: 1 << 16 } });
    const gate = new SharedArrayBuffer(8);
    const url = new URL(import.meta.url);
    const runs = Array.from({ length: threads }, (_, t) => {
      const w = new Worker(url, { workerData: { handles: store.handles, wal: mode === 'memory' ? null : wal.handles, gate, ms, prefix: `w${t}` } satisfies WriterData });
      return new Promise<WriterResult>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }).finally(() => w.terminate());
    });
    const g = new Int32Array(gate);
    while (Atomics.load(g, 0) < threads) {
      const seen = Atomics.load(g, 0);
      const w = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> } }).waitAsync(g, 0, seen);
      if (w.async) await w.value;
    }
    const fsyncs0 = wal.stats().fsyncs;
    Atomics.store(g, 1, 1);
    Atomics.notify(g, 1);
    const results = await Promise.all(runs);
    const fsyncs = wal.stats().fsyncs - fsyncs0;
    await wal.close();
    const commits = results.reduce((n, r) => n + r.commits, 0);
    const all = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
    return { commits_per_s: Math.round(commits / (ms / 1000)), p50_us: round(pct(all, 50), 1), p99_us: round(pct(all, 99), 1), fsyncs_per_commit: round(fsyncs / commits, 4) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function median(list: Figures[]): Figures {
  const sorted = [...list].sort((a, b) => a.commits_per_s - b.commits_per_s);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean', default: false }, seconds: { type: 'string' }, rounds: { type: 'string' }, dir: { type: 'string' }, out: { type: 'string' } },
  });
  const seconds = values.seconds !== undefined ? Number(values.seconds) : values.quick ? 0.5 : 2;
  const rounds = values.rounds !== undefined ? Number(values.rounds) : values.quick ? 1 : 3;
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds must be a positive number, got ${JSON.stringify(values.seconds)}`);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${JSON.stringify(values.rounds)}`);
  const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root
  const outDir = values.out ?? join(ROOT, 'bench', 'results');
  const base = values.dir ?? tmpdir();
  const log = (s: string): void => console.log(s);
  log(`wal bench: ${seconds} s per run, ${rounds} round(s), data in ${base}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  const samples = new Map<string, Figures[]>();
  for (let r = 0; r < rounds; r++) {
    for (const threads of THREADS) {
      for (const mode of MODES) {
        const f = await runOnce(base, mode, threads, seconds * 1000);
        const key = `${mode}/${threads}`;
        samples.set(key, [...(samples.get(key) ?? []), f]);
        log(`  round ${r + 1} ${mode.padEnd(8)} ${threads} writer(s): ${String(f.commits_per_s).padStart(7)} commits/s  p50 ${f.p50_us} µs  p99 ${f.p99_us} µs  ${f.fsyncs_per_commit} fsyncs/commit`);
      }
    }
  }
  const figures: Record<string, Figures> = {};
  for (const [key, list] of samples) figures[key] = median(list);
  const ratios: Record<string, number> = {};
  for (const threads of THREADS) {
    const memory = figures[`memory/${threads}`]!.commits_per_s;
    const no = figures[`no/${threads}`]!.commits_per_s;
    for (const mode of ['no', 'everysec', 'always'] as const) {
      ratios[`${mode}_vs_memory/${threads}`] = round(figures[`${mode}/${threads}`]!.commits_per_s / memory);
      if (mode !== 'no') ratios[`${mode}_vs_no/${threads}`] = round(figures[`${mode}/${threads}`]!.commits_per_s / no);
    }
  }
  ratios['always_2_writers_vs_1'] = round(figures['always/2']!.commits_per_s / figures['always/1']!.commits_per_s);
  const result = {
    workload: 'wal',
    machine: machineInfo(),
    date: new Date().toISOString(),
    commit: gitCommit(ROOT),
    mode: values.quick ? 'quick' : 'full',
    config: { seconds_per_run: seconds, rounds, data_dir: base, transaction: 'one ChatMessage create per commit (~120 B log record), acknowledged with wal.awaitDurable()', loadavg_at_start: loadavg().map((x) => round(x, 2)) },
    figures,
    ratios,
    notes: [
      'Keys are <policy>/<writer threads>; memory = the same store without any log (the ceiling).',
      'Figures are the median (by commits/s) of the rounds; rounds interleave every configuration to share drift.',
      'always: each acknowledged commit was fdatasynced; concurrent commits share one fdatasync (group commit), see fsyncs_per_commit.',
      'everysec: a main-thread timer fdatasyncs once a second; no: the OS writes back. Both acknowledge at once.',
      'fdatasync cost depends on the disk and its write cache: measure on the disk the data folder will live on (--dir).',
    ],
  };
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, 'wal.json');
  await writeFileAtomic(path, [`${JSON.stringify(result, null, 2)}\n`]);
  log(`  ratios: ${JSON.stringify(ratios)}`);
  log(`  wrote ${path}`);
}

if (!isMainThread) {
  parentPort!.postMessage(writer(workerData as WriterData));
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
