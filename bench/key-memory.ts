/**
 * @module bench/key-memory
 * Memory of 1,000,000 ChatMessage rows (bench/restart.ts's seed folder; issue #11, compact memory):
 * - columns: bytes per row of each column in the shared store (used bytes: offsets, values,
 *   validity; not the growth slack of the buffers), and for the pk and ref columns what the Utf8
 *   layout of the previous format (4-byte offset + UTF-8 bytes) held for the same values;
 * - rss: the RSS of `lexicons start dist/bench/app/main.js --workers 1` holding the rows, over
 *   the same server on an empty data folder, against the bytes of the CSV files (target <= 1.2x):
 *   after the first start from the CSV files, and after a restart from what its shutdown left; for
 *   this build and, with `--before DIR`, another built checkout (same run, alternating).
 * Writes bench/results/key-memory.json.
 *
 * Usage: node dist/bench/key-memory.js [--rows N] [--before DIR] [--out DIR]
 */
import { cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChatMessage, User } from '../examples/chat/models.js';
import { writeFileAtomic } from '../src/storage/atomic-file.js';
import { DictValues, Float64Values, Int64Values, Utf8Values, type Values } from '../src/storage/column-values.js';
import { readCsvFile } from '../src/storage/csv.js';
import { decodeRecord, planHeader, type HeaderPlan } from '../src/storage/csv-codec.js';
import { GrowBuf } from '../src/storage/grow-buf.js';
import { ControlBlock } from '../src/storage/layout.js';
import { compileSchema } from '../src/storage/schema.js';
import { SharedTable } from '../src/storage/table.js';
import { UuidValues } from '../src/storage/uuid-values.js';
import { gitCommit, machineInfo } from './loadgen/report.js';
import { startServer, stopServer, writeSeedFolder } from './restart.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/** Used bytes of the first `rows` slots of a value store (no validity). */
function usedBytes(values: Values, rows: number): number {
  if (values instanceof UuidValues || values instanceof Utf8Values) return (rows + 1) * 4 + values.offsets.i32(rows)[rows]!;
  if (values instanceof DictValues) return rows * 4 + usedBytes(values.dict, values.entries());
  if (values instanceof Int64Values || values instanceof Float64Values) return rows * 8;
  throw new Error('ChatMessage has no bool or list column');
}

/** What the Utf8 layout of the previous format used for the same strings. */
function utf8Bytes(values: UuidValues, rows: number): number {
  let bytes = (rows + 1) * 4;
  for (let i = 0; i < rows; i++) bytes += Buffer.byteLength(values.read(i), 'utf8');
  return bytes;
}

/** ChatMessage.csv of `dir` written into a table of this build; bytes per row per column. */
async function columnBytes(dir: string): Promise<Record<string, { bytesPerRow: number; utf8LayoutBytesPerRow?: number }>> {
  const schema = compileSchema([User, ChatMessage]);
  const ts = schema.byName.get('ChatMessage')!;
  const table = new SharedTable(ts, 0, ControlBlock.allocate(1, 0), (label, bytes) => GrowBuf.allocate(bytes, 1 << 30, label, true), 1024, 0);
  const file = join(dir, 'ChatMessage.csv');
  let plan: HeaderPlan | undefined;
  let rows = 0;
  await readCsvFile(file, (cells, line) => {
    if (plan === undefined) plan = planHeader(file, ts, cells);
    else {
      const row = decodeRecord(plan, cells, line);
      table.writeVersion(rows++, row.pk as string, row);
    }
  });
  const out: Record<string, { bytesPerRow: number; utf8LayoutBytesPerRow?: number }> = {
    '(versions: begin, next, flags)': { bytesPerRow: 13 },
    pk: { bytesPerRow: round(usedBytes(table.pk, rows) / rows), utf8LayoutBytesPerRow: round(utf8Bytes(table.pk, rows) / rows) },
  };
  ts.fields.forEach((f, k) => {
    const column = table.columns[k]!;
    const validity = rows / 8;
    const entry: { bytesPerRow: number; utf8LayoutBytesPerRow?: number } = { bytesPerRow: round((validity + usedBytes(column.values, rows)) / rows) };
    if (column.values instanceof UuidValues) entry.utf8LayoutBytesPerRow = round((validity + utf8Bytes(column.values, rows)) / rows);
    out[f.name] = entry;
  });
  const total = (k: 'bytesPerRow' | 'utf8LayoutBytesPerRow'): number => round(Object.values(out).reduce((s, e) => s + (e[k] ?? e.bytesPerRow), 0));
  out['(total)'] = { bytesPerRow: total('bytesPerRow'), utf8LayoutBytesPerRow: total('utf8LayoutBytesPerRow') };
  return out;
}

/** The resident set of a process, in bytes (Linux). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb[1]) * 1024;
}

/** RSS of `root`'s server once it listens on `data` (then stopped). */
async function serverRss(root: string, data: string): Promise<number> {
  const server = await startServer(root, data);
  await new Promise((r) => setTimeout(r, 2000)); // let start-up garbage be collected
  const rss = await rssOf(server.child.pid!);
  await stopServer(root, server);
  return rss;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { rows: { type: 'string' }, before: { type: 'string' }, out: { type: 'string' } } });
  const rows = values.rows !== undefined ? Number(values.rows) : 1_000_000;
  if (!Number.isSafeInteger(rows) || rows < 1) throw new Error('--rows must be a positive integer');
  const builds: Record<string, string> = values.before ? { before: resolve(values.before), after: ROOT } : { after: ROOT };
  const work = await mkdtemp(join(tmpdir(), 'lexicons-bench-keys-'));
  try {
    const seed = join(work, 'seed');
    await mkdir(seed);
    await writeSeedFolder(seed, rows);
    const csvBytes = (await stat(join(seed, 'ChatMessage.csv'))).size + (await stat(join(seed, 'User.csv'))).size;
    console.log(`key memory: ${rows.toLocaleString('en-US')} ChatMessage rows, CSV files ${csvBytes} bytes`);
    const columns = await columnBytes(seed);
    for (const [name, c] of Object.entries(columns)) console.log(`  ${name.padEnd(32)} ${String(c.bytesPerRow).padStart(7)} B/row${c.utf8LayoutBytesPerRow !== undefined ? ` (Utf8 layout ${c.utf8LayoutBytesPerRow})` : ''}`);
    const rss: Record<string, Record<string, number>> = {};
    for (const [name, root] of Object.entries(builds)) {
      const empty = join(work, `${name}-empty`);
      const data = join(work, name);
      await mkdir(empty);
      await cp(seed, data, { recursive: true });
      const emptyRss = await serverRss(root, empty);
      const fromCsv = await serverRss(root, data);
      const restart = await serverRss(root, data);
      rss[name] = {
        empty_rss_bytes: emptyRss,
        from_csv_rss_over_empty_bytes: fromCsv - emptyRss,
        restart_rss_over_empty_bytes: restart - emptyRss,
        from_csv_over_csv_bytes: round((fromCsv - emptyRss) / csvBytes, 3),
        restart_over_csv_bytes: round((restart - emptyRss) / csvBytes, 3),
      };
      console.log(`  ${name.padEnd(6)} RSS over empty: from CSV ${rss[name]!.from_csv_over_csv_bytes}x the CSV bytes, restart ${rss[name]!.restart_over_csv_bytes}x (target <= 1.2x)`);
    }
    const result = {
      workload: 'key-memory',
      machine: machineInfo(),
      date: new Date().toISOString(),
      commit: gitCommit(ROOT),
      ...(values.before ? { before_commit: gitCommit(builds.before!) } : {}),
      config: { rows, csv_bytes: csvBytes, loadavg: loadavg().map((x) => round(x)) },
      columns_bytes_per_row: columns,
      rss,
      notes: [
        'columns: used bytes per row of each ChatMessage column of this build (offsets + values + validity bit; growth slack excluded); utf8LayoutBytesPerRow: the previous format (pk and refs as Utf8: 4-byte offset + UTF-8 bytes) for the same values, computed.',
        'rss: VmRSS of the server process 2 s after its LISTEN line, minus the same build on an empty data folder, over the bytes of the seed CSV files; from_csv: first start from the CSV files; restart: a start from what its shutdown left.',
      ],
    };
    const outDir = values.out ?? join(ROOT, 'bench', 'results');
    await mkdir(outDir, { recursive: true });
    const path = join(outDir, 'key-memory.json');
    await writeFileAtomic(path, [`${JSON.stringify(result, null, 2)}\n`]);
    console.log(`  wrote ${path}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
