/**
 * @module bench/run
 * `npm run bench`: every workload against raw uWS.js (the limit), the Socket.IO peer (the usual
 * choice) and lexicons with 1 and 2 workers, side by side in one run. Writes
 * bench/results/<workload>.json and rewrites the table of bench/README.md.
 *
 * Usage: node dist/bench/run.js [--quick|--full] [--workloads echo,chat,read,connect,transfer]
 *   [--systems uws-raw,socketio,lexicons-w1,lexicons-w2] [--procs N] [--duration S] [--warmup S]
 *   [--hash scrypt|sha256|none] [--no-ceiling] [--quiet-wait S] [--out DIR] [--no-readme]
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { HashKind } from './loadgen/dataset.js';
import { buildResults, gitCommit, updateReadme, writeJson } from './loadgen/report.js';
import { SYSTEMS, lexiconsMissing, type SystemName } from './loadgen/servers.js';
import { PRESETS, RUNNERS, WORKLOADS, type BenchConfig, type WorkloadName } from './loadgen/workloads.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root
const DEFAULT_SYSTEMS: SystemName[] = ['uws-raw', 'socketio', 'lexicons-w1', 'lexicons-w2'];

function list<T extends string>(value: string | undefined, allowed: readonly T[], name: string, fallback: readonly T[]): T[] {
  if (value === undefined) return [...fallback];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`--${name}: unknown ${JSON.stringify(item)} (known: ${allowed.join(', ')})`);
  return items as T[];
}

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      workloads: { type: 'string' },
      systems: { type: 'string' },
      procs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      hash: { type: 'string' },
      'no-ceiling': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string' },
      out: { type: 'string' },
      'no-readme': { type: 'boolean', default: false },
    },
  });
  if (values.quick && values.full) throw new Error('--quick and --full are exclusive');
  const preset = PRESETS[values.quick ? 'quick' : 'full'];
  const workloads = list(values.workloads, WORKLOADS, 'workloads', WORKLOADS);
  const systems = list(values.systems, Object.keys(SYSTEMS) as SystemName[], 'systems', DEFAULT_SYSTEMS);
  const hash = (values.hash ?? preset.hash) as HashKind;
  if (!['scrypt', 'sha256', 'none'].includes(hash)) throw new Error(`--hash must be scrypt, sha256 or none, got ${JSON.stringify(values.hash)}`);
  const procs = positiveNumber(values.procs, 'procs');
  if (procs !== undefined && !Number.isInteger(procs)) throw new Error('--procs must be a positive integer');
  const duration = positiveNumber(values.duration, 'duration');
  const warmup = positiveNumber(values.warmup, 'warmup');
  const quietWait = values['quiet-wait'] === '0' ? 0 : positiveNumber(values['quiet-wait'], 'quiet-wait');
  const custom = procs !== undefined || duration !== undefined || warmup !== undefined || values.hash !== undefined;
  const config: BenchConfig = {
    ...preset,
    mode: custom ? 'custom' : preset.mode,
    systems,
    hash,
    procs: procs ?? preset.procs,
    durationMs: duration !== undefined ? duration * 1000 : preset.durationMs,
    warmupMs: warmup !== undefined ? warmup * 1000 : preset.warmupMs,
    ceiling: preset.ceiling && !values['no-ceiling'],
    quietWaitMs: quietWait !== undefined ? quietWait * 1000 : preset.quietWaitMs,
    log: (line) => console.log(line),
  };
  const outDir = values.out ?? `${ROOT}bench/results`;
  await mkdir(outDir, { recursive: true });
  const commit = gitCommit(ROOT);
  const missing = lexiconsMissing();
  const notes = [
    'Every system runs as its own process on 127.0.0.1, driven by the same raw-socket generator (bench/loadgen) in ' +
      `${config.procs} forked process(es); a 2-core machine shares its cores between server and generator.`,
    'Socket.IO is driven over its WebSocket transport by the same generator speaking Engine.IO v4 / Socket.IO v5 packets (no socket.io-client).',
    `Register/Login passwords are hashed with ${hash} by every system.`,
    'other_cpu_cores: CPU used by other programs during the window; figures with other_cpu_cores above ~0.1 are disturbed.',
  ];
  if (missing !== null && systems.some((s) => s.startsWith('lexicons'))) notes.push(`lexicons not run: ${missing}.`);
  const labels = Object.fromEntries(Object.values(SYSTEMS).map((s) => [s.name, s.label]));
  console.log(`bench: mode ${config.mode}, workloads ${workloads.join(', ')}, systems ${systems.join(', ')}, commit ${commit.slice(0, 10)}`);
  for (const workload of workloads) {
    console.log(`${workload}:`);
    const outcome = await RUNNERS[workload as WorkloadName](config);
    const { log: _log, echo, chat, read, connect, transfer, ...shared } = config;
    const specific = { echo, chat, read, connect, transfer }[workload];
    const results = buildResults(workload, outcome, { mode: config.mode, commit, config: { ...shared, [workload]: specific }, notes, labels });
    for (const [k, v] of Object.entries(results.ratios)) if (v !== null) console.log(`  ratio ${k}: ${v}`);
    for (const t of results.targets) console.log(`  target ${t.name} (${t.goal}): ${t.note}`);
    const path = await writeJson(outDir, workload, results);
    console.log(`  -> ${path}`);
  }
  if (!values['no-readme']) {
    await updateReadme(`${ROOT}bench/README.md`, outDir);
    console.log(`bench/README.md updated from ${outDir}`);
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
