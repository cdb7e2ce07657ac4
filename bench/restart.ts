/**
 * @module bench/restart
 * Restart of a server holding 1,000,000 ChatMessage rows (+1,000 users), this build side by side
 * with another built checkout (`--before DIR`, or env LEXICONS_BASELINE), in one run, alternating:
 * - start-to-listen: `lexicons start dist/bench/app/main.js --workers 1` from spawn to the LISTEN
 *   log line, from the CSV files of a first start, then from what each build's own shutdown left
 *   (the CSV snapshot before; the binary snapshot after);
 * - shutdown: SIGTERM to exit (the shutdown save: CSV before; binary + CSV after);
 * - snapshot: one `snapshotDataFolder` of the 1M rows in a fresh process of each build (the
 *   periodic snapshot: the CSV files before, the binary files after), its wall time and the CPU
 *   time of the whole process (all threads) while it ran;
 * - file sizes, and what first touch of that much fresh memory costs on this machine: a fresh
 *   process allocates a SharedArrayBuffer of the binary snapshot's bytes and writes one byte per
 *   4 KiB page (page faults; on a VM such as Firecracker each first touch also faults on the host,
 *   and a start that reads the snapshot into fresh shared memory pays it in full).
 * Writes bench/results/restart.json.
 *
 * Usage: node dist/bench/restart.js [--before DIR] [--rows N] [--repeat N] [--out DIR]
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/storage/atomic-file.js';
import { formatRecords } from '../src/storage/csv.js';
import { gitCommit, machineInfo } from './loadgen/report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root
const USERS = 1000;
const CHANNELS = ['Public', 'General', 'Random', 'Support', 'Dev', 'Ops', 'Sales', 'Design'];
const WORDS = ['hello', 'world', 'lexicons', 'shared', 'memory', 'realtime', 'socket', 'message', 'quick', 'brown', 'fox', 'ünïcödé', 'a, b', '"quoted"'];
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

const userPk = (i: number): string => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** A uuid4-shaped pk, deterministic (as bench/csv.ts). */
function uuidLike(i: number, r: number): string {
  const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${hex(i, 8)}-${hex(r, 4)}-4${hex(i % 4096, 3)}-8${hex(r % 4096, 3)}-${hex((i * 2654435761) % 2 ** 48, 12)}`;
}

/** The seed's data folder: `User.csv` and `ChatMessage.csv` (the bench app's Models), no manifest (also used by bench/csv.ts). */
export async function writeSeedFolder(dir: string, rows: number): Promise<void> {
  const users = Array.from({ length: USERS }, (_, i) => [userPk(i), `user${i}@example.com`, 'x'.repeat(64)]);
  await writeFileAtomic(join(dir, 'User.csv'), [formatRecords([['pk', 'email', 'password'], ...users])]);
  let seed = 42;
  const rnd = (k: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % k;
  };
  function* chunks(): Generator<string> {
    yield formatRecords([['pk', 'author', 'channel', 'content', 'timestamp']]);
    for (let i = 0; i < rows; i += 10_000) {
      const records: Array<Array<string | null>> = [];
      for (let j = i; j < Math.min(rows, i + 10_000); j++) {
        let content = '';
        while (content.length < 36) content += `${WORDS[rnd(WORDS.length)]} `;
        records.push([uuidLike(j, rnd(0x10000)), j % 50 === 0 ? null : userPk(rnd(USERS)), CHANNELS[rnd(CHANNELS.length)]!, content.trimEnd(), String(1637000000 + j / 7 + rnd(1_000_000) / 1e6)]);
      }
      yield formatRecords(records);
    }
  }
  await writeFileAtomic(join(dir, 'ChatMessage.csv'), chunks());
}

interface Run {
  listenSeconds: number;
  shutdownSeconds: number;
}

/** A server of one build, listening. */
export interface Listening {
  readonly child: ChildProcess;
  readonly listenSeconds: number;
  /** Resolves with the exit code. */
  readonly exited: Promise<unknown[]>;
  /** Its log lines so far (stdout or stderr, depending on the build and the terminal). */
  log(): string;
}

/** Starts `root`'s build of the bench app (`--workers 1`) on `data` and waits for its LISTEN log line. */
export async function startServer(root: string, data: string): Promise<Listening> {
  const started = performance.now();
  const child = spawn(process.execPath, [join(root, 'bin', 'lexicons.js'), 'start', join(root, 'dist', 'bench', 'app', 'main.js'), '--workers', '1', '--port', '0', '--data', data], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LEXICONS_LOG: 'all' },
  });
  let out = '';
  const exited = once(child, 'exit');
  const listenSeconds = await new Promise<number>((resolvePromise, reject) => {
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('"status":"LISTEN"')) resolvePromise((performance.now() - started) / 1000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(([code]) => reject(new Error(`${root}: the server exited with ${code} before it listened: ${out}`)));
  });
  // The signal handlers are installed right after the LISTEN line: give them a moment.
  await new Promise((r) => setTimeout(r, 1000));
  return { child, listenSeconds, exited, log: () => out };
}

/** Stops a server with SIGTERM and waits for its exit (code 0 expected); returns the seconds it took. */
export async function stopServer(root: string, server: Listening): Promise<number> {
  const stopping = performance.now();
  server.child.kill('SIGTERM');
  const [code] = (await server.exited) as [number | null];
  if (code !== 0) throw new Error(`${root}: the server exited with ${code} at shutdown: ${server.log()}`);
  return (performance.now() - stopping) / 1000;
}

/** Starts `root`'s build on `data`, waits for LISTEN, stops it with SIGTERM and waits for its exit. */
async function startStop(root: string, data: string): Promise<Run> {
  const server = await startServer(root, data);
  return { listenSeconds: server.listenSeconds, shutdownSeconds: await stopServer(root, server) };
}

interface SnapshotPhaseResult {
  /** The first snapshot of the process (after: it starts the snapshot thread). */
  firstSeconds: number;
  firstCpuSeconds: number;
  /** The next one (the steady periodic snapshot). */
  seconds: number;
  cpuSeconds: number;
  openSeconds: number;
}

/** In a fresh process of `root`'s build: open `data`, then one periodic snapshot, timed. */
async function snapshotPhase(root: string, data: string): Promise<SnapshotPhaseResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--phase', 'snapshot', '--root', root, '--dir', data], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const [msg] = (await Promise.race([once(child, 'message'), exited.then(([code]) => Promise.reject(new Error(`the snapshot phase exited with ${code}`)))])) as [SnapshotPhaseResult];
  await exited;
  return msg;
}

async function runSnapshotPhase(root: string, dir: string): Promise<SnapshotPhaseResult> {
  const storage = (m: string): string => pathToFileURL(join(root, 'dist', 'src', 'storage', m)).href;
  const schemaMod = (await import(pathToFileURL(join(root, 'dist', 'examples', 'chat', 'models.js')).href)) as { User: unknown; ChatMessage: unknown };
  const { compileSchema } = (await import(storage('schema.js'))) as { compileSchema: (m: unknown[]) => unknown };
  const { openDataFolder } = (await import(storage('recovery.js'))) as { openDataFolder: (s: unknown, d: string, o: unknown) => Promise<{ store: { runSync: (fn: (db: { create: (t: unknown, v: unknown) => unknown }) => unknown) => unknown }; wal: { close: () => Promise<void> } }> };
  const { snapshotDataFolder } = (await import(storage('snapshot.js'))) as { snapshotDataFolder: (store: unknown, wal: unknown, dir: string) => Promise<unknown> };
  let t0 = performance.now();
  const { store, wal } = await openDataFolder(compileSchema([schemaMod.User, schemaMod.ChatMessage]), dir, { fsync: 'no' });
  const openSeconds = (performance.now() - t0) / 1000;
  const timed = async (): Promise<[number, number]> => {
    store.runSync((db) => db.create(schemaMod.ChatMessage, { channel: 'Public', content: 'one more', timestamp: 1 })); // a periodic snapshot only runs after a commit
    const cpu = process.cpuUsage();
    const t = performance.now();
    await snapshotDataFolder(store, wal, dir);
    const used = process.cpuUsage(cpu);
    return [(performance.now() - t) / 1000, (used.user + used.system) / 1e6];
  };
  const [firstSeconds, firstCpuSeconds] = await timed();
  const [seconds, cpuSeconds] = await timed();
  await wal.close();
  return { firstSeconds, firstCpuSeconds, seconds, cpuSeconds, openSeconds };
}

/** Seconds a fresh process takes to touch `bytes` of fresh shared memory, one byte per 4 KiB page. */
async function firstTouch(bytes: number): Promise<number> {
  const code = `const u = new Uint8Array(new SharedArrayBuffer(${bytes})); const t = performance.now(); for (let i = 0; i < u.length; i += 4096) u[i] = 1; console.log(performance.now() - t);`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  return Number(out) / 1000;
}

async function arrowFileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) if (name.endsWith('.arrow')) total += (await stat(join(dir, name))).size;
  return total;
}

async function sizes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await readdir(dir)) if (name.startsWith('ChatMessage.')) out[name] = (await stat(join(dir, name))).size;
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { before: { type: 'string' }, rows: { type: 'string' }, repeat: { type: 'string' }, out: { type: 'string' }, phase: { type: 'string' }, root: { type: 'string' }, dir: { type: 'string' } },
  });
  if (values.phase === 'snapshot') {
    process.send!(await runSnapshotPhase(values.root!, values.dir!));
    return;
  }
  const before = values.before ?? process.env.LEXICONS_BASELINE;
  if (!before) throw new Error('--before DIR (or env LEXICONS_BASELINE): the root of the built checkout to compare with');
  const builds = { before: resolve(before), after: ROOT };
  const rows = values.rows !== undefined ? Number(values.rows) : 1_000_000;
  const repeat = values.repeat !== undefined ? Number(values.repeat) : 2;
  if (!Number.isSafeInteger(rows) || rows < 1 || !Number.isSafeInteger(repeat) || repeat < 1) throw new Error('--rows and --repeat must be positive integers');
  const log = (s: string): void => console.log(s);
  const loadStart = loadavg().map((x) => round(x, 2));
  const work = await mkdtemp(join(tmpdir(), 'lexicons-bench-restart-'));
  try {
    log(`restart bench: ${rows.toLocaleString('en-US')} ChatMessage rows, before = ${builds.before}, after = ${builds.after}; load average ${loadStart.join(' ')}`);
    const seed = join(work, 'seed');
    await mkdir(seed);
    await writeSeedFolder(seed, rows);
    const dirs = { before: join(work, 'before'), after: join(work, 'after') };
    const runs: Record<'before' | 'after', { fromCsv: Run[]; fromOwn: Run[] }> = { before: { fromCsv: [], fromOwn: [] }, after: { fromCsv: [], fromOwn: [] } };
    const order = ['before', 'after'] as const;
    // First starts, from the CSV files of the seed (the CSV load path of each build).
    for (let r = 0; r < repeat; r++) {
      for (const b of r % 2 === 0 ? order : ([...order].reverse() as Array<'before' | 'after'>)) {
        await rm(dirs[b], { recursive: true, force: true });
        await cp(seed, dirs[b], { recursive: true });
        const run = await startStop(builds[b], dirs[b]);
        runs[b].fromCsv.push(run);
        log(`  ${b.padEnd(6)} from CSV       listen ${run.listenSeconds.toFixed(2)} s, shutdown ${run.shutdownSeconds.toFixed(2)} s`);
      }
    }
    // Restarts from what each build's shutdown left.
    for (let r = 0; r < repeat; r++) {
      for (const b of r % 2 === 0 ? order : ([...order].reverse() as Array<'before' | 'after'>)) {
        const run = await startStop(builds[b], dirs[b]);
        runs[b].fromOwn.push(run);
        log(`  ${b.padEnd(6)} restart        listen ${run.listenSeconds.toFixed(2)} s, shutdown ${run.shutdownSeconds.toFixed(2)} s`);
      }
    }
    const snapshots: Record<'before' | 'after', SnapshotPhaseResult[]> = { before: [], after: [] };
    for (let r = 0; r < repeat; r++) {
      for (const b of r % 2 === 0 ? order : ([...order].reverse() as Array<'before' | 'after'>)) {
        const s = await snapshotPhase(builds[b], dirs[b]);
        snapshots[b].push(s);
        log(`  ${b.padEnd(6)} snapshot       first ${s.firstSeconds.toFixed(2)} s, CPU ${s.firstCpuSeconds.toFixed(2)} s; next ${s.seconds.toFixed(2)} s, CPU ${s.cpuSeconds.toFixed(2)} s (open ${s.openSeconds.toFixed(2)} s)`);
      }
    }
    const arrowBytes = await arrowFileBytes(dirs.after);
    const touches: number[] = [];
    for (let r = 0; r < repeat; r++) touches.push(await firstTouch(arrowBytes));
    log(`  first touch of ${(arrowBytes / 2 ** 20).toFixed(0)} MiB of fresh shared memory (the after build's .arrow bytes): ${touches.map((t) => t.toFixed(2)).join(', ')} s`);
    const best = (xs: number[]): number => round(Math.min(...xs));
    const fig = (b: 'before' | 'after') => ({
      listen_from_csv_s: best(runs[b].fromCsv.map((x) => x.listenSeconds)),
      listen_restart_s: best(runs[b].fromOwn.map((x) => x.listenSeconds)),
      shutdown_s: best([...runs[b].fromCsv, ...runs[b].fromOwn].map((x) => x.shutdownSeconds)),
      snapshot_s: best(snapshots[b].map((x) => x.seconds)),
      snapshot_cpu_s: best(snapshots[b].map((x) => x.cpuSeconds)),
      first_snapshot_s: best(snapshots[b].map((x) => x.firstSeconds)),
      first_snapshot_cpu_s: best(snapshots[b].map((x) => x.firstCpuSeconds)),
      open_s: best(snapshots[b].map((x) => x.openSeconds)),
      all: { runs: runs[b], snapshots: snapshots[b] },
    });
    const figures = { before: fig('before'), after: fig('after') };
    const ratio = (k: 'listen_from_csv_s' | 'listen_restart_s' | 'shutdown_s' | 'snapshot_s' | 'snapshot_cpu_s'): number => round(figures.before[k] / figures.after[k], 2);
    const result = {
      workload: 'restart',
      machine: machineInfo(),
      date: new Date().toISOString(),
      commit: gitCommit(ROOT),
      before_commit: gitCommit(builds.before),
      config: { rows, users: USERS, repeat, workers: 1, app: 'dist/bench/app/main.js (the chat example: User, ChatMessage)', loadavg_at_start: loadStart, loadavg_at_end: loadavg().map((x) => round(x, 2)) },
      figures,
      ratios_before_over_after: {
        listen_restart: ratio('listen_restart_s'),
        listen_from_csv: ratio('listen_from_csv_s'),
        shutdown: ratio('shutdown_s'),
        snapshot_wall: ratio('snapshot_s'),
        snapshot_cpu: ratio('snapshot_cpu_s'),
      },
      file_bytes: { before: await sizes(dirs.before), after: await sizes(dirs.after) },
      first_touch: { bytes: arrowBytes, seconds: best(touches), all: touches.map((t) => round(t)) },
      notes: [
        'Each figure is the best of `repeat` runs; before and after alternate. listen: from spawn of `lexicons start` to its LISTEN log line (open the data folder, start 1 worker, listen). shutdown: SIGTERM to exit (OnShutdown task, the shutdown save, close).',
        'listen_from_csv: the first start from the seed\'s CSV files (no manifest). listen_restart: a start from what the build\'s own shutdown left (before: CSV files + manifest; after: Arrow IPC files + CSV files + manifest).',
        'first_touch: a fresh process touching (one byte per 4 KiB page) a SharedArrayBuffer as large as the after build\'s .arrow files: the page-fault share of listen_restart on this machine, which a start reading the snapshot into fresh shared memory cannot avoid.',
        'snapshot: a periodic snapshot after one commit, in a fresh process that opened the folder (open_s: openDataFolder alone), twice: first_snapshot (after: includes starting the snapshot thread) and snapshot (the next one, steady). Before: every table to CSV; after: every table to Arrow IPC in the snapshot thread. CPU is process.cpuUsage() over the call, all threads.',
      ],
    };
    const outDir = values.out ?? join(ROOT, 'bench', 'results');
    await mkdir(outDir, { recursive: true });
    const path = join(outDir, 'restart.json');
    await writeFileAtomic(path, [`${JSON.stringify(result, null, 2)}\n`]);
    log(`  ratios before/after: ${JSON.stringify(result.ratios_before_over_after)}; files ${JSON.stringify(result.file_bytes)}`);
    log(`  wrote ${path}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main(process.argv.slice(2));
}
