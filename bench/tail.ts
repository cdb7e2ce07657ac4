/**
 * @module bench/tail
 * Where chat's latency tail comes from (issue #11 "Steady tail latency"). Every system gets the
 * SAME offered loads (open loop, msgs/s), so the tails compare at equal work, and each phase
 * reports, besides delivery p50/p99/p99.9, what could have made it late:
 * - the generator's own event-loop delay (a delivery it reads late is late by that much);
 * - the CPU the server, the generator and everything else used (2 cores: oversubscription shows);
 * - for lexicons, the server's stage histograms over the phase (scraped from `/metrics` before and
 *   after): queue wait on the main thread, batch round trip, the worker's run time within it,
 *   history-order wait, main-thread apply time, and the main event-loop lag.
 *
 *   npm run build && node dist/bench/tail.js [--rates 500,1000,2000,4000] [--systems uws-raw,lexicons-w1,...]
 *        [--duration 8] [--warmup 2] [--conns 200] [--senders 20] [--out bench/results]
 *
 * Writes bench/results/tail.json (rendered into bench/README.md by `npm run bench`'s renderer).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PASSWORD, userEmail } from './loadgen/dataset.js';
import { runLoad, type LoadResult } from './loadgen/driver.js';
import { gitCommit, machineInfo, writeJson } from './loadgen/report.js';
import { SYSTEMS, isLexiconsSystem, startSystem, type RunningSystem, type SystemName } from './loadgen/servers.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '500,1000,2000,4000' },
    systems: { type: 'string', default: 'uws-raw,lexicons-w1,lexicons-w2,lexicons-w1-nohist,lexicons-w2-nohist' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    conns: { type: 'string', default: '200' },
    senders: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const rates = values.rates.split(',').map(Number);
if (rates.some((r) => !Number.isFinite(r) || r <= 0)) throw new Error(`--rates must be positive numbers, got ${values.rates}`);
const systems = values.systems.split(',') as SystemName[];
for (const name of systems) if (!(name in SYSTEMS)) throw new Error(`unknown system ${name}; one of ${Object.keys(SYSTEMS).join(', ')}`);
const conns = Number(values.conns);
const senders = Number(values.senders);
const userList = Array.from({ length: Math.min(conns, 100) }, (_, k) => ({ email: userEmail(k), password: PASSWORD }));

/** The histograms and gauges of one `/metrics` scrape that the stages are read from. */
type Scrape = Map<string, number>;

const STAGES = {
  queue_wait: 'lexicons_queue_wait_seconds',
  batch_round_trip: 'lexicons_batch_duration_seconds',
  batch_run: 'lexicons_batch_run_seconds',
  history_wait: 'lexicons_history_wait_seconds',
  batch_apply: 'lexicons_batch_apply_seconds',
} as const;

async function scrape(port: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:le|worker)="([^"]+)"\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (m) out.set(m[3] === undefined ? m[1]! : `${m[1]}|${m[3]}`, Number(m[4]));
    // GC time comes per kind (minor, major, incremental, weakcb): summed.
    const gc = /^nodejs_gc_duration_seconds_sum\{kind="[^"]+"\} ([0-9.eE+-]+)$/.exec(line);
    if (gc) out.set('nodejs_gc_duration_seconds_sum', (out.get('nodejs_gc_duration_seconds_sum') ?? 0) + Number(gc[1]));
  }
  return out;
}

/**
 * Context switches of each server thread (Linux /proc/<pid>/task/<tid>/status), voluntary (the
 * thread slept: a wake-up follows) and not (preempted), keyed `tid name`. Empty off Linux.
 */
function threadSwitches(pid: number): Map<string, { voluntary: number; involuntary: number }> {
  const out = new Map<string, { voluntary: number; involuntary: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const name = /^Name:\s*(.*)$/m.exec(status)?.[1] ?? '?';
      const voluntary = Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
      const involuntary = Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
      out.set(`${tid} ${name}`, { voluntary, involuntary });
    } catch {
      // the thread exited meanwhile
    }
  }
  return out;
}

/** Per message of the window: switches of the threads that did any (main thread first), rounded. */
function switchesPerMessage(before: ReturnType<typeof threadSwitches>, after: ReturnType<typeof threadSwitches>, messages: number): Record<string, string> {
  const out: Record<string, string> = {};
  if (messages <= 0) return out;
  for (const [key, a] of after) {
    const b = before.get(key) ?? { voluntary: 0, involuntary: 0 };
    const v = (a.voluntary - b.voluntary) / messages;
    const n = (a.involuntary - b.involuntary) / messages;
    if (v + n >= 0.01) out[key] = `${v.toFixed(2)} vol + ${n.toFixed(2)} preempted`;
  }
  return out;
}

/** The 99th percentile (upper bucket bound, ms) and mean of a histogram's growth between two scrapes. */
function stage(before: Scrape, after: Scrape, name: string): { mean_ms: number; p99_ms_le: number | null } {
  const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const count = delta(`${name}_count`);
  const bounds = [...after.keys()].filter((k) => k.startsWith(`${name}_bucket|`)).map((k) => k.split('|')[1]!).filter((le) => le !== '+Inf').map(Number).sort((a, b) => a - b);
  if (count === 0) return { mean_ms: 0, p99_ms_le: 0 };
  let p99: number | null = null; // null: beyond the last bound
  for (const le of bounds) {
    if (delta(`${name}_bucket|${le}`) >= 0.99 * count) {
      p99 = le * 1000;
      break;
    }
  }
  return { mean_ms: Math.round((delta(`${name}_sum`) / count) * 1e6) / 1e3, p99_ms_le: p99 };
}

async function phase(system: RunningSystem, rate: number, register: boolean): Promise<Record<string, unknown>> {
  const lexicons = isLexiconsSystem(system.spec.name);
  // The stages over the measured window only (not the logins and warm-up before it).
  const scrapes: { open?: Scrape; close?: Scrape } = {};
  const switches: { open?: ReturnType<typeof threadSwitches>; close?: ReturnType<typeof threadSwitches> } = {};
  const onWindow = async (edge: 'open' | 'close'): Promise<void> => {
    if (lexicons) scrapes[edge] = await scrape(system.port);
    if (system.pid !== undefined) switches[edge] = threadSwitches(system.pid);
  };
  const r: LoadResult = await runLoad({
    onWindow,
    mode: 'chat',
    protocol: system.spec.protocol,
    host: '127.0.0.1',
    port: system.port,
    procs: 1,
    conns,
    senders,
    window: 4096,
    rate,
    auth: 'header',
    authHeader: 'Login',
    users: userList,
    register: register ? userList : [],
    channel: 'Public',
    padding: 0,
    setupConcurrency: 16,
    timeoutMs: 120_000,
    warmupMs: Number(values.warmup) * 1000,
    durationMs: Number(values.duration) * 1000,
    serverPid: system.pid,
  });
  const figures: Record<string, unknown> = {
    offered_per_s: rate,
    calls_per_s: r.callsPerSec,
    delivered_per_s: r.deliveredPerSec,
    delivery_p50_ms: r.deliveryMs.p50,
    delivery_p99_ms: r.deliveryMs.p99,
    delivery_p999_ms: r.deliveryMs.p999,
    loadgen_loop_delay_p99_ms: r.loadgenLoopDelayMs.p99,
    server_cpu_cores: r.server?.cpuCores ?? null,
    loadgen_cpu_cores: r.loadgenCpuCores,
    other_cpu_cores: r.otherCpuCores,
    skipped: r.skipped,
    errors: r.totals.errors,
  };
  const { open: before, close: after } = scrapes;
  if (before !== undefined && after !== undefined) {
    for (const [key, name] of Object.entries(STAGES)) {
      const s = stage(before, after, name);
      figures[`${key}_mean_ms`] = s.mean_ms;
      figures[`${key}_p99_ms_le`] = s.p99_ms_le;
    }
    // prom-client samples the loop every 10 ms and resets at each scrape: p99 over the phase, the 10 ms period included.
    figures.main_loop_lag_p99_ms = Math.round((after.get('nodejs_eventloop_lag_p99_seconds') ?? 0) * 1e4) / 10;
    // Counts per message of the window (direction holds on a busy machine, unlike latencies).
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const messages = delta('lexicons_signals_total');
    const batches = delta('lexicons_batches_total');
    if (messages > 0) {
      figures.jobs_per_message = Math.round((batches / messages) * 1000) / 1000;
      figures.idle_worker_jobs_per_message = Math.round((delta('lexicons_batches_to_idle_worker_total') / messages) * 1000) / 1000;
      const byWorker = [...after.keys()].filter((k) => k.startsWith('lexicons_batches_by_worker_total|')).map((k) => delta(k)).sort((a, b) => b - a);
      figures.jobs_share_by_worker = byWorker.map((n) => Math.round((n / Math.max(1, batches)) * 1000) / 1000);
    }
    if (switches.open !== undefined && switches.close !== undefined) figures.server_switches_per_message = switchesPerMessage(switches.open, switches.close, messages);
    figures.main_gc_seconds = Math.round(((after.get('nodejs_gc_duration_seconds_sum') ?? 0) - (before.get('nodejs_gc_duration_seconds_sum') ?? 0)) * 1e3) / 1e3;
  }
  return figures;
}

const figures: Record<string, Record<string, unknown>> = {};
for (const name of systems) {
  const dataDir = isLexiconsSystem(name) ? await mkdtemp(join(tmpdir(), 'lexicons-tail-')) : undefined;
  const system = await startSystem(name, { rows: 0, channels: 1, users: 0, hash: 'sha256', dataDir, startTimeoutMs: 120_000 });
  try {
    for (const [i, rate] of rates.entries()) {
      const f = await phase(system, rate, i === 0);
      figures[`${name}@${rate}`] = f;
      const stages = isLexiconsSystem(name) ? `  queue ${f.queue_wait_mean_ms}/${f.queue_wait_p99_ms_le}  trip ${f.batch_round_trip_mean_ms}/${f.batch_round_trip_p99_ms_le}  run ${f.batch_run_mean_ms}/${f.batch_run_p99_ms_le}  hist ${f.history_wait_mean_ms}/${f.history_wait_p99_ms_le}  apply ${f.batch_apply_mean_ms}/${f.batch_apply_p99_ms_le}  lag99 ${f.main_loop_lag_p99_ms}` : '';
      console.log(`${name.padEnd(20)} ${String(rate).padStart(5)}/s  got ${f.calls_per_s}/s  p50 ${f.delivery_p50_ms}  p99 ${f.delivery_p99_ms}  p99.9 ${f.delivery_p999_ms}  gen-lag99 ${f.loadgen_loop_delay_p99_ms}  cpu srv ${f.server_cpu_cores} gen ${f.loadgen_cpu_cores} other ${f.other_cpu_cores}${stages}`);
      if (isLexiconsSystem(name)) console.log(`${''.padEnd(28)}jobs/msg ${f.jobs_per_message}  idle-worker jobs/msg ${f.idle_worker_jobs_per_message}  share by worker ${JSON.stringify(f.jobs_share_by_worker)}  switches/msg ${JSON.stringify(f.server_switches_per_message)}`);
    }
  } finally {
    await system.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

const ratios: Record<string, number | null> = {};
for (const rate of rates) {
  const raw = figures[`uws-raw@${rate}`]?.delivery_p99_ms as number | undefined;
  for (const name of systems.filter((s) => s !== 'uws-raw')) {
    const p99 = figures[`${name}@${rate}`]?.delivery_p99_ms as number | undefined;
    if (raw !== undefined && p99 !== undefined && raw > 0) ratios[`${name} / uws-raw p99 @${rate}`] = Math.round((p99 / raw) * 100) / 100;
  }
}
const file = await writeJson(values.out, 'tail', {
  workload: 'tail',
  date: new Date().toISOString(),
  commit: gitCommit(process.cwd()),
  machine: machineInfo(),
  command: `node dist/bench/tail.js --rates ${values.rates} --systems ${values.systems} --duration ${values.duration} --conns ${conns} --senders ${senders}`,
  headline: 'delivery p99 at the same offered msgs/s, over raw uWS',
  figures,
  ratios,
  notes: [
    'Keys are <system>@<offered msgs/s>; each message goes to every one of the connections. *_p99_ms_le: the upper bound of the histogram bucket holding the 99th percentile (coarse: 1, 2.5, 5, 10, 25 ms ...).',
    'Stages (lexicons): queue_wait = arrival to dispatch; batch_round_trip = dispatch to result (batch_run of it in the worker); history_wait = held for an earlier commit\'s frame; batch_apply = main-thread fan-out time.',
  ],
});
console.log(`wrote ${file}`);
