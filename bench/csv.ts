/**
 * @module bench/csv
 * CSV persistence of 1,000,000 ChatMessage rows (author ref, channel, ~40-char content,
 * timestamp): `saveDataFolder` and `loadDataFolder` through the real SharedStore, side by side
 * with a baseline in the same run: the same rows as JSON lines (`JSON.stringify` per row) written
 * and read back with plain fs streams into the same kind of store. Also reports where load time
 * goes (csv-parse alone; bulkLoad from memory). Writes bench/results/csv.json.
 *
 * Usage: node dist/bench/csv.js [--quick] [--rows N] [--out DIR]
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
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
      pk: crypto.randomUUID(),
      author: i % 50 === 0 ? null : `00000000-0000-4000-8000-${String(rnd(USERS)).padStart(12, '0')}`,
      channel: CHANNELS[rnd(CHANNELS.length)],
      content: content.trimEnd(),
      timestamp: 1637000000 + i / 7 + rnd(1_000_000) / 1e6,
    };
  }
}

/** Peak RSS sampled every 25 ms while `fn` runs (sampling only sees the event loop's idle moments). */
async function measure<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number; peakRssMiB: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25);
  const t0 = performance.now();
  try {
    const value = await fn();
    const seconds = (performance.now() - t0) / 1000;
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, seconds, peakRssMiB: Math.round(peak / 2 ** 20) };
  } finally {
    clearInterval(timer);
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

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, rows: { type: 'string' }, out: { type: 'string' } } });
  const rows = values.rows !== undefined ? Number(values.rows) : values.quick ? 100_000 : 1_000_000;
  if (!Number.isSafeInteger(rows) || rows < 1) throw new Error(`--rows must be a positive integer, got ${JSON.stringify(values.rows)}`);
  const outDir = values.out ?? join(ROOT, 'bench', 'results');
  const work = await mkdtemp(join(tmpdir(), 'lexicons-bench-csv-'));
  const log = (s: string): void => console.log(s);
  try {
    const csvDir = join(work, 'csv');
    const jsonDir = join(work, 'json');
    await mkdir(csvDir);
    await mkdir(jsonDir);
    log(`csv bench: ${rows.toLocaleString('en-US')} ChatMessage rows (+${USERS} users), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

    const source = makeStore(rows);
    const all = [...messages(rows)];
    source.bulkLoad('User', users());
    const bulk = await measure(() => source.bulkLoad('ChatMessage', all));
    all.length = 0;
    log(`  bulkLoad from memory  ${bulk.seconds.toFixed(2)} s`);

    const csvSave = await measure(() => saveDataFolder(source, csvDir));
    const csvBytes = csvSave.value.tables.reduce((a, t) => a + t.bytes, 0);
    log(`  CSV save              ${csvSave.seconds.toFixed(2)} s  ${(csvBytes / 2 ** 20).toFixed(1)} MiB`);
    const jsonSave = await measure(() => saveJsonLines(source, jsonDir));
    log(`  JSON lines save       ${jsonSave.seconds.toFixed(2)} s  ${(jsonSave.value / 2 ** 20).toFixed(1)} MiB`);

    const parseOnly = await measure(async () => {
      let n = 0;
      await readCsvFile(join(csvDir, 'ChatMessage.csv'), () => {
        n++;
      });
      return n - 1;
    });
    log(`  csv-parse only        ${parseOnly.seconds.toFixed(2)} s`);

    const csvTarget = makeStore(rows);
    const csvLoad = await measure(() => loadDataFolder(csvTarget, csvDir));
    const csvRows = csvLoad.value.tables.find((t) => t.table === 'ChatMessage')!.rows;
    log(`  CSV load              ${csvLoad.seconds.toFixed(2)} s`);
    const jsonTarget = makeStore(rows);
    const jsonLoad = await measure(() => loadJsonLines(jsonTarget, jsonDir));
    log(`  JSON lines load       ${jsonLoad.seconds.toFixed(2)} s`);
    if (csvRows !== rows || jsonLoad.value !== rows + USERS || parseOnly.value !== rows) throw new Error('row counts differ: the bench is broken');

    const rps = (s: number): number => Math.round(rows / s);
    const figures = {
      csv_save: { seconds: round(csvSave.seconds), rows_per_s: rps(csvSave.seconds), bytes: csvBytes, peak_rss_mib: csvSave.peakRssMiB },
      csv_load: { seconds: round(csvLoad.seconds), rows_per_s: rps(csvLoad.seconds), peak_rss_mib: csvLoad.peakRssMiB },
      jsonl_save: { seconds: round(jsonSave.seconds), rows_per_s: rps(jsonSave.seconds), bytes: jsonSave.value, peak_rss_mib: jsonSave.peakRssMiB },
      jsonl_load: { seconds: round(jsonLoad.seconds), rows_per_s: rps(jsonLoad.seconds), peak_rss_mib: jsonLoad.peakRssMiB },
      csv_parse_only: { seconds: round(parseOnly.seconds), rows_per_s: rps(parseOnly.seconds) },
      bulk_load_from_memory: { seconds: round(bulk.seconds), rows_per_s: rps(bulk.seconds) },
    };
    const ratios = {
      csv_save_vs_jsonl_rows_per_s: round(jsonSave.seconds / csvSave.seconds),
      csv_load_vs_jsonl_rows_per_s: round(jsonLoad.seconds / csvLoad.seconds),
      csv_bytes_vs_jsonl: round(csvBytes / jsonSave.value),
      csv_parse_share_of_csv_load: round(parseOnly.seconds / csvLoad.seconds),
      bulk_load_share_of_csv_load: round(bulk.seconds / csvLoad.seconds),
    };
    const result = {
      workload: 'csv',
      machine: machineInfo(),
      date: new Date().toISOString(),
      commit: gitCommit(ROOT),
      mode: values.rows !== undefined ? 'custom' : values.quick ? 'quick' : 'full',
      config: { rows, users: USERS, table: 'ChatMessage(author ref, channel dictionary str, content ~40 chars, timestamp float)', load_batch_rows: 50_000, loadavg_at_start: loadavg().map((x) => round(x, 2)) },
      figures,
      ratios,
      notes: [
        'CSV: saveDataFolder/loadDataFolder (csv-stringify per 1,000 rows, atomic temp+fsync+rename; csv-parse stream, decode per schema, bulkLoad per 50,000 rows).',
        'Baseline: JSON.stringify per row, 1,000 rows per fs write stream write, fsync; read back with readline + JSON.parse + bulkLoad per 50,000 rows.',
        'Ratios above 1 mean CSV is faster (rows/s) or larger (bytes). Peak RSS is sampled every 25 ms and includes the store.',
      ],
    };
    await mkdir(outDir, { recursive: true });
    const path = join(outDir, 'csv.json');
    await writeFileAtomic(path, [`${JSON.stringify(result, null, 2)}\n`]);
    log(`  wrote ${path}`);
    log(`  (files: ${(await stat(join(csvDir, 'ChatMessage.csv'))).size} bytes CSV)`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
