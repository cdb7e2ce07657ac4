/**
 * @module bench/loadgen/workloads
 * The four workloads of `npm run bench`, each run against every system side by side (a fresh
 * server per system and workload), reduced to flat figures per system:
 * - `echo`: Echo round trips, closed loop; plus the generator's own ceiling (raw uWS, no JSON).
 * - `chat`: N subscribers of one channel, M senders: max throughput (closed loop), then an open
 *   loop at 50% of it for the latency target.
 * - `read`: GetChatList of a channel and get-by-unique-field (GetUser by email) over seeded rows.
 * - `connect`: a storm of Login-authenticated connections.
 * - `transfer` (lexicons only: the peers have no database): bank transfers between seeded
 *   accounts, uniform and with 80% of them debiting one hot account, each as a ratio to Echo on
 *   the same server in the same run (the cost of a read-write transaction and of its conflicts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHANNEL_TEMPLATE, USER_EMAIL_TEMPLATE, loginUser, seedDataFolder, type HashKind } from './dataset.js';
import { runLoad, type LoadOptions, type LoadResult } from './driver.js';
import type { User } from './job.js';
import { SYSTEMS, isLexiconsSystem, lexiconsMissing, startSystem, type RunningSystem, type SystemName } from './servers.js';

export type WorkloadName = 'echo' | 'chat' | 'read' | 'connect' | 'transfer';
export const WORKLOADS: readonly WorkloadName[] = ['echo', 'chat', 'read', 'connect', 'transfer'];

export interface BenchConfig {
  mode: 'quick' | 'full' | 'custom';
  systems: SystemName[];
  procs: number;
  hash: HashKind;
  durationMs: number;
  warmupMs: number;
  /** Users registered and logged in with (connection k uses user k mod n). */
  users: number;
  echo: { conns: number; window: number };
  chat: { conns: number; senders: number; window: number; padding: number };
  read: { rows: number; channels: number; seededUsers: number; conns: number; window: number };
  connect: { concurrency: number; max: number; probe: boolean };
  /** Seeded accounts; `hot`: percent of transfers debiting account a0 in the contended phase. */
  transfer: { accounts: number; hot: number; conns: number; window: number };
  /** Also measure the generator's ceiling (raw uWS echo without JSON) in the echo workload. */
  ceiling: boolean;
  startTimeoutMs: number;
  /** Wait up to this long before each phase for other programs to go quiet (shared machines). */
  quietWaitMs: number;
  /**
   * Per-handshake (and drain) time limit. Generous in full mode: the first calls on a server
   * holding a million rows may wait for per-worker indexes to build.
   */
  handshakeTimeoutMs: number;
  log: (line: string) => void;
}

export const PRESETS: Record<'quick' | 'full', Omit<BenchConfig, 'systems' | 'log'>> = {
  quick: {
    mode: 'quick',
    procs: 1,
    hash: 'scrypt',
    durationMs: 2000,
    warmupMs: 500,
    users: 20,
    echo: { conns: 16, window: 32 },
    chat: { conns: 50, senders: 5, window: 4, padding: 0 },
    read: { rows: 20_000, channels: 200, seededUsers: 20_000, conns: 16, window: 4 },
    connect: { concurrency: 8, max: 20_000, probe: true },
    transfer: { accounts: 10_000, hot: 80, conns: 16, window: 8 },
    ceiling: true,
    startTimeoutMs: 60_000,
    quietWaitMs: 0,
    handshakeTimeoutMs: 10_000,
  },
  full: {
    mode: 'full',
    procs: 1,
    hash: 'scrypt',
    durationMs: 10_000,
    warmupMs: 2000,
    users: 100,
    echo: { conns: 32, window: 64 },
    chat: { conns: 200, senders: 20, window: 8, padding: 0 },
    read: { rows: 1_000_000, channels: 10_000, seededUsers: 1_000_000, conns: 32, window: 8 },
    connect: { concurrency: 32, max: 1_000_000, probe: true },
    transfer: { accounts: 10_000, hot: 80, conns: 32, window: 8 },
    ceiling: true,
    startTimeoutMs: 300_000,
    quietWaitMs: 30_000,
    handshakeTimeoutMs: 120_000,
  },
};

/** One system's figures in a workload: flat numbers, or why it did not run. */
export type Figures = Record<string, number | string | boolean>;

export interface WorkloadOutcome {
  figures: Partial<Record<SystemName, Figures>>;
  /** Full generator results per system and phase, for whoever wants more than the table. */
  details: Partial<Record<SystemName, Record<string, LoadResult>>>;
}

const users = (n: number): User[] => Array.from({ length: n }, (_, k) => loginUser(k));

function baseLoad(config: BenchConfig, system: RunningSystem, register: boolean): Omit<LoadOptions, 'mode' | 'conns' | 'senders' | 'window'> {
  const list = users(config.users);
  return {
    protocol: system.spec.protocol,
    host: '127.0.0.1',
    port: system.port,
    procs: config.procs,
    rate: 0,
    auth: 'header',
    authHeader: 'Login',
    users: list,
    register: register ? list : [],
    channel: 'Public',
    padding: 0,
    setupConcurrency: 16,
    timeoutMs: config.handshakeTimeoutMs,
    warmupMs: config.warmupMs,
    durationMs: config.durationMs,
    serverPid: system.pid,
    quietWaitMs: config.quietWaitMs,
  };
}

/** Flat figures common to every phase, prefixed. */
function common(r: LoadResult, prefix = ''): Figures {
  const f: Figures = {};
  f[`${prefix}server_cpu_s_per_1k_calls`] = r.server?.cpuSecondsPer1kCalls ?? 0;
  f[`${prefix}server_cpu_cores`] = r.server?.cpuCores ?? 0;
  f[`${prefix}loadgen_cpu_cores`] = r.loadgenCpuCores;
  f[`${prefix}other_cpu_cores`] = r.otherCpuCores;
  f[`${prefix}errors`] = r.totals.errors;
  return f;
}

async function withSystem(
  name: SystemName,
  config: BenchConfig,
  seed: { rows: number; channels: number; users: number; accounts?: number },
  body: (system: RunningSystem) => Promise<{ figures: Figures; details: Record<string, LoadResult> }>,
  outcome: WorkloadOutcome,
): Promise<void> {
  const isLexicons = isLexiconsSystem(name);
  const missing = isLexicons ? lexiconsMissing(name.startsWith('baseline')) : null;
  if (missing !== null) {
    outcome.figures[name] = { skipped: missing };
    config.log(`  ${SYSTEMS[name].label}: skipped (${missing})`);
    return;
  }
  let dataDir: string | undefined;
  let system: RunningSystem | null = null;
  try {
    if (isLexicons) {
      dataDir = await mkdtemp(join(tmpdir(), 'lexicons-bench-'));
      if (seed.rows > 0 || seed.users > 0 || (seed.accounts ?? 0) > 0) await seedDataFolder(dataDir, seed.rows, seed.channels, seed.users, seed.accounts);
    }
    system = await startSystem(name, { ...seed, hash: config.hash, dataDir, startTimeoutMs: config.startTimeoutMs });
    const { figures, details } = await body(system);
    figures.server_peak_rss_mib = Object.values(details).reduce((m, r) => Math.max(m, r.server?.peakRssMiB ?? 0), 0);
    outcome.figures[name] = figures;
    outcome.details[name] = details;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!;
    outcome.figures[name] = { failed: message };
    config.log(`  ${SYSTEMS[name].label}: FAILED ${message}${system ? `\n${system.output()}` : ''}`);
  } finally {
    await system?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  }
}

function line(config: BenchConfig, name: SystemName, text: string): void {
  config.log(`  ${SYSTEMS[name].label.padEnd(40)} ${text}`);
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : String(n));

export async function runEcho(config: BenchConfig): Promise<WorkloadOutcome> {
  const outcome: WorkloadOutcome = { figures: {}, details: {} };
  const systems: SystemName[] = config.ceiling ? ['uws-wrap', ...config.systems] : config.systems;
  for (const name of systems) {
    await withSystem(name, config, { rows: 0, channels: 1, users: 0 }, async (system) => {
      const r = await runLoad({ ...baseLoad(config, system, true), mode: 'echo', conns: config.echo.conns, senders: config.echo.conns, window: config.echo.window });
      line(config, name, `${fmt(r.callsPerSec)} calls/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  (server ${r.server?.cpuCores} cores, generator ${r.loadgenCpuCores}, other ${r.otherCpuCores})`);
      // The generator's own cost: calls it completes per CPU second of its own (its ceiling per core).
      const perCore = r.loadgenCpuCores > 0 ? Math.round(r.callsPerSec / r.loadgenCpuCores) : 0;
      return { figures: { calls_per_s: r.callsPerSec, p50_ms: r.latencyMs.p50, p99_ms: r.latencyMs.p99, ...common(r), loadgen_calls_per_cpu_s: perCore }, details: { echo: r } };
    }, outcome);
  }
  return outcome;
}

export async function runChat(config: BenchConfig): Promise<WorkloadOutcome> {
  const outcome: WorkloadOutcome = { figures: {}, details: {} };
  const c = config.chat;
  for (const name of config.systems) {
    await withSystem(name, config, { rows: 0, channels: 1, users: 0 }, async (system) => {
      const load = { mode: 'chat' as const, conns: c.conns, senders: c.senders, window: c.window, padding: c.padding };
      const max = await runLoad({ ...baseLoad(config, system, true), ...load });
      const rate = Math.max(1, Math.floor(max.callsPerSec / 2));
      const half = await runLoad({ ...baseLoad(config, system, false), ...load, rate, window: 4096 });
      line(
        config,
        name,
        `max ${fmt(max.callsPerSec)} msgs/s -> ${fmt(max.deliveredPerSec)} delivered/s (p99 ${max.deliveryMs.p99} ms); ` +
          `at 50% (${fmt(rate)}/s): p50 ${half.deliveryMs.p50} ms p99 ${half.deliveryMs.p99} ms`,
      );
      const expected = max.totals.expectedDelivered;
      return {
        figures: {
          calls_per_s: max.callsPerSec,
          delivered_per_s: max.deliveredPerSec,
          delivery_p50_ms: max.deliveryMs.p50,
          delivery_p99_ms: max.deliveryMs.p99,
          half_rate_calls_per_s: half.callsPerSec,
          half_rate_delivery_p50_ms: half.deliveryMs.p50,
          half_rate_delivery_p99_ms: half.deliveryMs.p99,
          delivered_ratio: expected === 0 ? 0 : Math.round((max.totals.delivered / expected) * 10_000) / 10_000,
          ...common(max),
          server_cpu_s_per_1k_delivered: max.deliveredPerSec === 0 ? 0 : Math.round(((max.server?.cpuCores ?? 0) / max.deliveredPerSec) * 1e7) / 1e4,
        },
        details: { max, half },
      };
    }, outcome);
  }
  return outcome;
}

export async function runRead(config: BenchConfig): Promise<WorkloadOutcome> {
  const outcome: WorkloadOutcome = { figures: {}, details: {} };
  const r = config.read;
  for (const name of config.systems) {
    await withSystem(name, config, { rows: r.rows, channels: r.channels, users: r.seededUsers }, async (system) => {
      const load = { mode: 'request' as const, conns: r.conns, senders: r.conns, window: r.window };
      const list = await runLoad({
        ...baseLoad(config, system, true),
        ...load,
        request: { signal: 'GetChatList', args: `{"channel":"${CHANNEL_TEMPLATE}"}`, keys: r.channels },
      });
      const lookup = await runLoad({
        ...baseLoad(config, system, false),
        ...load,
        request: { signal: 'GetUser', args: `{"email":"${USER_EMAIL_TEMPLATE}"}`, keys: r.seededUsers },
      });
      line(
        config,
        name,
        `GetChatList ${fmt(list.callsPerSec)}/s (p99 ${list.latencyMs.p99} ms); GetUser ${fmt(lookup.callsPerSec)}/s (p99 ${lookup.latencyMs.p99} ms)`,
      );
      return {
        figures: {
          list_calls_per_s: list.callsPerSec,
          list_p50_ms: list.latencyMs.p50,
          list_p99_ms: list.latencyMs.p99,
          lookup_calls_per_s: lookup.callsPerSec,
          lookup_p50_ms: lookup.latencyMs.p50,
          lookup_p99_ms: lookup.latencyMs.p99,
          rows: r.rows,
          rows_per_list: Math.round(r.rows / r.channels),
          ...common(list, 'list_'),
          ...common(lookup, 'lookup_'),
        },
        details: { list, lookup },
      };
    }, outcome);
  }
  return outcome;
}

export async function runConnect(config: BenchConfig): Promise<WorkloadOutcome> {
  const outcome: WorkloadOutcome = { figures: {}, details: {} };
  const s = config.connect;
  for (const name of config.systems) {
    await withSystem(name, config, { rows: 0, channels: 1, users: 0 }, async (system) => {
      const r = await runLoad({
        ...baseLoad(config, system, true),
        mode: 'connect',
        conns: 0,
        senders: 0,
        window: 1,
        storm: { concurrency: s.concurrency, max: s.max, sourceAddresses: 1, probe: s.probe },
      });
      line(config, name, `${fmt(r.callsPerSec)} connections/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  (${r.totals.errors} failed)`);
      return {
        figures: { conns_per_s: r.callsPerSec, p50_ms: r.latencyMs.p50, p99_ms: r.latencyMs.p99, ...common(r) },
        details: { connect: r },
      };
    }, outcome);
  }
  return outcome;
}

/**
 * Echo, then uniform transfers, then contended ones (`hot`% debit a0), on one lexicons server with
 * the same connections and window: the ratios to Echo are the figures (same server, same run).
 */
export async function runTransfer(config: BenchConfig): Promise<WorkloadOutcome> {
  const outcome: WorkloadOutcome = { figures: {}, details: {} };
  const t = config.transfer;
  for (const name of config.systems) {
    if (!isLexiconsSystem(name)) {
      outcome.figures[name] = { skipped: 'no database (transfers are a lexicons workload)' };
      continue;
    }
    await withSystem(name, config, { rows: 0, channels: 1, users: 0, accounts: t.accounts }, async (system) => {
      const shape = { conns: t.conns, senders: t.conns, window: t.window };
      const echo = await runLoad({ ...baseLoad(config, system, true), ...shape, mode: 'echo' });
      const transfer = (hot: number) =>
        runLoad({ ...baseLoad(config, system, false), ...shape, mode: 'request', request: { signal: 'Transfer', args: `{"k":{k:9},"hot":${hot},"n":${t.accounts}}`, keys: 100 * t.accounts } });
      const uniform = await transfer(0);
      const hot = await transfer(t.hot);
      const toEcho = (r: LoadResult) => (echo.callsPerSec === 0 ? 0 : Math.round((r.callsPerSec / echo.callsPerSec) * 1000) / 1000);
      line(config, name, `echo ${fmt(echo.callsPerSec)}/s; uniform transfers ${fmt(uniform.callsPerSec)}/s (${toEcho(uniform)}x echo); ${t.hot}% hot ${fmt(hot.callsPerSec)}/s (${toEcho(hot)}x echo)`);
      return {
        figures: {
          echo_calls_per_s: echo.callsPerSec,
          uniform_calls_per_s: uniform.callsPerSec,
          uniform_p99_ms: uniform.latencyMs.p99,
          uniform_to_echo: toEcho(uniform),
          hot_calls_per_s: hot.callsPerSec,
          hot_p99_ms: hot.latencyMs.p99,
          hot_to_echo: toEcho(hot),
          hot_percent: t.hot,
          accounts: t.accounts,
          ...common(uniform, 'uniform_'),
          ...common(hot, 'hot_'),
        },
        details: { echo, uniform, hot },
      };
    }, outcome);
  }
  return outcome;
}

export const RUNNERS: Record<WorkloadName, (config: BenchConfig) => Promise<WorkloadOutcome>> = {
  echo: runEcho,
  chat: runChat,
  read: runRead,
  connect: runConnect,
  transfer: runTransfer,
};
