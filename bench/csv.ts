/**
 * @module bench/csv
 * CSV persistence of 1,000,000 ChatMessage rows (author ref, channel, ~40-char content,
 * timestamp): `saveDataFolder` and `loadDataFolder` through the real SharedStore, side by side
 * with a baseline in the same run: the same rows as JSON lines (`JSON.stringify` per row) written
 * and read back with plain fs streams into the same kind of store. Also reports where load time
 * goes (the CSV parser alone; bulkLoad from memory). Each phase runs in a fresh child process.
 * With `--baseline DIR` (another built checkout), its own parse and load phases run on the same
 * file, alternating with ours: CSV load rows/s before/after in one run.
 * Writes bench/results/csv.json.
 *
 * Usage: node dist/bench/csv.js [--quick] [--rows N] [--repeat N] [--out DIR] [--baseline DIR]
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { fork } from 'node:child_process';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/storage/atomic-file.js';
import { readCsvFile } from '../src/storage/csv.js';
import { loadDataFolder, saveDataFolder } from '../src/storage/persist.js';
import { Model, compileSchema, field } from '../src/storage/schema.js';
import { SharedStore } from '../src/storage/store.js';
import { gitCommit, machineInfo } from './loadgen/report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root

class User extends Model {
  static email = field.str({ unique: true });
  static password = field.str();
}
class ChatMessage extends Model {
  static author = field.ref(() => User);
  static channel = field.str({ dictionary: true, index: true });
  static content = field.str();
  static timestamp = field.float();
}
const schema = compileSchema([User, ChatMessage]);
const USERS = 1000;
const CHANNELS = ['Public', 'General', 'Random', 'Support', 'Dev', 'Ops', 'Sales', 'Design'];
const WORDS = ['hello', 'world', 'lexicons', 'shared', 'memory', 'realtime', 'socket', 'message', 'quick', 'brown', 'fox', 'ünïcödé', 'a, b', '"quoted"'];

function makeStore(rows: number): SharedStore {
  return SharedStore.create(schema, { initialRows: rows + USERS });
}

function* users(): Generator<Record<string, unknown>> {
  for (let i = 0; i < USERS; i++) yield { pk: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, email: `user${i}@example.com`, password: 'x'.repeat(64) };
}

/** A uuid4-shaped pk, deterministic so every phase sees the same rows. */
function uuidLike(i: number, r: number): string {
  const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${hex(i, 8)}-${hex(r, 4)}-4${hex(i % 4096, 3)}-8${hex(r % 4096, 3)}-${hex(i * 2654435761 % 2 ** 48, 12)}`;
}

function* messages(n: number): Generator<Record<string, unknown>> {
  let seed = 42;
  const rnd = (k: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % k;
  };
  for (let i = 0; i < n; i++) {
    let content = '';
    while (content.length < 36) content += `${WORDS[rnd(WORDS.length)]} `;
    yield {
      pk: uuidLike(i, rnd(0x10000)),
      author: i % 50 === 0 ? null : `00000000-0000-4000-8000-${String(rnd(USERS)).padStart(12, '0')}`,
      channel: CHANNELS[rnd(CHANNELS.length)],
      content: content.trimEnd(),
      timestamp: 1637000000 + i / 7 + rnd(1_000_000) / 1e6,
    };
  }
}

/** Baseline save: one `JSON.stringify(row)` line per row, 1,000 rows per write, fs write stream, fsync at close. */
async function saveJsonLines(store: SharedStore, dir: string): Promise<number> {
  let bytes = 0;
  for (const table of schema.tables) {
    // flush: the file descriptor is fsynced before it is closed.
    const ws = createWriteStream(join(dir, `${table.name}.jsonl`), { flush: true });
    let chunk = '';
    let n = 0;
    for (const row of store.scan(table.name)) {
      chunk += `${JSON.stringify(row)}\n`;
      if (++n % 1000 === 0) {
        bytes += Buffer.byteLength(chunk);
        if (!ws.write(chunk)) await once(ws, 'drain');
        chunk = '';
      }
    }
    bytes += Buffer.byteLength(chunk);
    ws.end(chunk);
    await once(ws, 'close');
  }
  return bytes;
}

/** Baseline load: readline over an fs read stream, `JSON.parse` per line, bulkLoad in batches of 50,000. */
async function loadJsonLines(store: SharedStore, dir: string): Promise<number> {
  let total = 0;
  for (const table of [schema.byName.get('User')!, schema.byName.get('ChatMessage')!]) {
    const lines = createInterface({ input: createReadStream(join(dir, `${table.name}.jsonl`), { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    let batch: Record<string, unknown>[] = [];
    for await (const line of lines) {
      batch.push(JSON.parse(line) as Record<string, unknown>);
      if (batch.length === 50_000) {
        total += store.bulkLoad(table.name, batch);
        batch = [];
      }
    }
    if (batch.length) total += store.bulkLoad(table.name, batch);
  }
  return total;
}

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

const PHASES = ['save-csv', 'save-jsonl', 'parse-csv', 'load-csv', 'load-jsonl'] as const;
type Phase = (typeof PHASES)[number];
interface PhaseResult {
  seconds: number;
  rows: number;
  bytes?: number;
  bulkSeconds?: number;
  /** Peak resident set of the whole child process (getrusage), MiB. */
  maxRssMiB: number;
}

/** One measurement in this (fresh) process, so no phase pays for another's garbage. */
async function runPhase(phase: Phase, dir: string, rows: number): Promise<PhaseResult> {
  const done = (seconds: number, extra: Partial<PhaseResult> = {}): PhaseResult => ({ seconds, rows, maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), ...extra });
  if (phase === 'save-csv' || phase === 'save-jsonl') {
    const store = makeStore(rows);
    store.bulkLoad('User', users());
    const all = [...messages(rows)];
    let t0 = performance.now();
    store.bulkLoad('ChatMessage', all);
    const bulkSeconds = (performance.now() - t0) / 1000;
    all.length = 0;
    t0 = performance.now();
    if (phase === 'save-csv') {
      const report = await saveDataFolder(store, dir);
      return done((performance.now() - t0) / 1000, { bulkSeconds, bytes: report.tables.reduce((a, t) => a + t.bytes, 0) });
    }
    const bytes = await saveJsonLines(store, dir);
    return done((performance.now() - t0) / 1000, { bulkSeconds, bytes });
  }
  const t0 = performance.now();
  if (phase === 'parse-csv') {
    let n = -1; // header
    await readCsvFile(join(dir, 'ChatMessage.csv'), () => {
      n++;
    });
    return done((performance.now() - t0) / 1000, { rows: n });
  }
  const store = makeStore(rows);
  if (phase === 'load-csv') {
    const report = await loadDataFolder(store, dir);
    return done((performance.now() - t0) / 1000, { rows: report.tables.find((t) => t.table === 'ChatMessage')!.rows });
  }
  const n = await loadJsonLines(store, dir);
  return done((performance.now() - t0) / 1000, { rows: n - USERS });
}

/** Runs a phase in a fresh process: of this build, or of the build at `baseline` (its own dist/bench/csv.js). */
async function inChild(phase: Phase, dir: string, rows: number, baseline?: string): Promise<PhaseResult> {
  const script = baseline === undefined ? fileURLToPath(import.meta.url) : join(baseline, 'dist', 'bench', 'csv.js');
  const child = fork(script, ['--phase', phase, '--dir', dir, '--rows', String(rows)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const [msg] = (await Promise.race([once(child, 'message'), exited.then(([code]) => Promise.reject(new Error(`phase ${phase} exited with ${code}`)))])) as [PhaseResult];
  await exited;
  if (msg.rows !== rows) throw new Error(`phase ${phase}: ${msg.rows} rows instead of ${rows}: the bench is broken`);
  return msg;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean', default: false }, rows: { type: 'string' }, repeat: { type: 'string' }, out: { type: 'string' }, phase: { type: 'string' }, dir: { type: 'string' }, baseline: { type: 'string' } },
  });
  const rows = values.rows !== undefined ? Number(values.rows) : values.quick ? 100_000 : 1_000_000;
  if (!Number.isSafeInteger(rows) || rows < 1) throw new Error(`--rows must be a positive integer, got ${JSON.stringify(values.rows)}`);
  if (values.phase !== undefined) {
    if (!PHASES.includes(values.phase as Phase) || !values.dir) throw new Error(`--phase must be one of ${PHASES.join(', ')}, with --dir`);
    process.send!(await runPhase(values.phase as Phase, values.dir, rows));
    return;
  }
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 2;
  if (!Number.isSafeInteger(repeat) || repeat < 1) throw new Error(`--repeat must be a positive integer, got ${JSON.stringify(values.repeat)}`);
  const outDir = values.out ?? join(ROOT, 'bench', 'results');
  const work = await mkdtemp(join(tmpdir(), 'lexicons-bench-csv-'));
  const log = (s: string): void => console.log(s);
  const loadStart = loadavg().map((x) => round(x, 2));
  try {
    const csvDir = join(work, 'csv');
    const jsonDir = join(work, 'json');
    await mkdir(csvDir);
    await mkdir(jsonDir);
    log(`csv bench: ${rows.toLocaleString('en-US')} ChatMessage rows (+${USERS} users), best of ${repeat}, each phase in a fresh process; load average ${loadStart.join(' ')}`);
    const baseline = values.baseline;
    const best: Partial<Record<Phase, PhaseResult>> = {};
    const baselineBest: Partial<Record<'parse-csv' | 'load-csv', PhaseResult>> = {};
    for (let r = 0; r < repeat; r++) {
      for (const phase of PHASES) {
        const ours = async (): Promise<void> => {
          const res = await inChild(phase, phase.endsWith('jsonl') ? jsonDir : csvDir, rows);
          log(`  ${phase.padEnd(11)} ${res.seconds.toFixed(2)} s${res.bulkSeconds !== undefined ? `  (bulkLoad from memory ${res.bulkSeconds.toFixed(2)} s)` : ''}  max RSS ${res.maxRssMiB} MiB`);
          const prev = best[phase];
          if (!prev || res.seconds < prev.seconds) best[phase] = { ...res, bulkSeconds: Math.min(res.bulkSeconds ?? Infinity, prev?.bulkSeconds ?? Infinity) };
        };
        if (baseline === undefined || (phase !== 'parse-csv' && phase !== 'load-csv')) {
          await ours();
          continue;
        }
        const theirs = async (): Promise<void> => {
          const res = await inChild(phase, csvDir, rows, baseline);
          log(`  ${phase.padEnd(11)} ${res.seconds.toFixed(2)} s  max RSS ${res.maxRssMiB} MiB  (baseline)`);
          const prev = baselineBest[phase];
          if (!prev || res.seconds < prev.seconds) baselineBest[phase] = res;
        };
        if (r % 2 === 0) {
          await theirs();
          await ours();
        } else {
          await ours();
          await theirs();
        }
      }
    }
    const b = best as Record<Phase, PhaseResult>;
    const rps = (s: number): number => Math.round(rows / s);
    const bulk = Math.min(b['save-csv'].bulkSeconds!, b['save-jsonl'].bulkSeconds!);
    const figures = {
      csv_save: { seconds: round(b['save-csv'].seconds), rows_per_s: rps(b['save-csv'].seconds), bytes: b['save-csv'].bytes, max_rss_mib: b['save-csv'].maxRssMiB },
      csv_load: { seconds: round(b['load-csv'].seconds), rows_per_s: rps(b['load-csv'].seconds), max_rss_mib: b['load-csv'].maxRssMiB },
      jsonl_save: { seconds: round(b['save-jsonl'].seconds), rows_per_s: rps(b['save-jsonl'].seconds), bytes: b['save-jsonl'].bytes, max_rss_mib: b['save-jsonl'].maxRssMiB },
      jsonl_load: { seconds: round(b['load-jsonl'].seconds), rows_per_s: rps(b['load-jsonl'].seconds), max_rss_mib: b['load-jsonl'].maxRssMiB },
      csv_parse_only: { seconds: round(b['parse-csv'].seconds), rows_per_s: rps(b['parse-csv'].seconds), max_rss_mib: b['parse-csv'].maxRssMiB },
      bulk_load_from_memory: { seconds: round(bulk), rows_per_s: rps(bulk) },
    };
    const ratios = {
      csv_save_vs_jsonl_rows_per_s: round(b['save-jsonl'].seconds / b['save-csv'].seconds),
      csv_load_vs_jsonl_rows_per_s: round(b['load-jsonl'].seconds / b['load-csv'].seconds),
      csv_bytes_vs_jsonl: round(b['save-csv'].bytes! / b['save-jsonl'].bytes!),
      csv_parse_share_of_csv_load: round(b['parse-csv'].seconds / b['load-csv'].seconds),
      bulk_load_share_of_csv_load: round(bulk / b['load-csv'].seconds),
    };
    const before = baselineBest as Record<'parse-csv' | 'load-csv', PhaseResult>;
    const vsBaseline =
      baseline === undefined
        ? null
        : {
            baseline: { root: baseline, commit: gitCommit(baseline) },
            csv_load: { seconds: round(before['load-csv'].seconds), rows_per_s: rps(before['load-csv'].seconds), max_rss_mib: before['load-csv'].maxRssMiB },
            csv_parse_only: { seconds: round(before['parse-csv'].seconds), rows_per_s: rps(before['parse-csv'].seconds), max_rss_mib: before['parse-csv'].maxRssMiB },
            ratios_after_over_before_rows_per_s: {
              csv_load: round(before['load-csv'].seconds / b['load-csv'].seconds),
              csv_parse_only: round(before['parse-csv'].seconds / b['parse-csv'].seconds),
            },
          };
    const result = {
      workload: 'csv',
      machine: machineInfo(),
      date: new Date().toISOString(),
      commit: gitCommit(ROOT),
      mode: values.rows !== undefined || values.repeat !== undefined ? 'custom' : values.quick ? 'quick' : 'full',
      config: {
        rows,
        users: USERS,
        repeat,
        table: 'ChatMessage(author ref, channel dictionary str, content ~40 chars, timestamp float)',
        load_batch_rows: 50_000,
        loadavg_at_start: loadStart,
        loadavg_at_end: loadavg().map((x) => round(x, 2)),
      },
      figures,
      ratios,
      before: vsBaseline,
      notes: [
        'Each phase runs in a fresh child process; figures are the best of `repeat` runs. Seconds cover the save or load call only (the store is filled before a save is timed).',
        'CSV: saveDataFolder/loadDataFolder (csv-stringify per 1,000 rows, temp file + fsync + rename + folder fsync; csv-parse fed 64 KiB reads, decode per schema, rows written straight into the empty table 4,096 per commit).',
        'Baseline: JSON.stringify per row, 1,000 rows per fs write stream write, fsync at close; read back with readline + JSON.parse + bulkLoad per 50,000 rows.',
        'bulk_load_from_memory: one bulkLoad of all rows already in memory (a transaction: write set, checks through the indexes). csv_parse_only: csv-parse with the UTF-8 check and null detection, no decode, no store.',
        'before (with --baseline): the parse and load phases of another built checkout (its own dist/bench/csv.js) on the same file, alternating with ours; ratios above 1 mean this build loads faster.',
        'Ratios above 1 mean CSV is faster (rows/s) or larger (bytes). max RSS is the child process peak, including the generated rows and the store.',
      ],
    };
    await mkdir(outDir, { recursive: true });
    const path = join(outDir, 'csv.json');
    await writeFileAtomic(path, [`${JSON.stringify(result, null, 2)}\n`]);
    log(`  wrote ${path}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
