/**
 * @module bench/loadgen/driver
 * Runs one load phase over `procs` forked generator processes: setup (register, connect), go,
 * warm-up, a measured window (server CPU sampled from /proc at both ends), stop and drain, then
 * merges every process's figures into one {@link LoadResult}.
 *
 * @example
 * const result = await runLoad({ ...defaults, mode: 'echo', port: 9001, procs: 1, conns: 64,
 *   window: 32, durationMs: 5000, warmupMs: 1000, serverPid });
 * console.log(result.callsPerSec, result.latencyMs.p99);
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import type { Command, Job, Report, TotalFigures, User, WindowFigures } from './job.js';
import { cpuSeconds, machineBusySeconds, peakRssMiB } from './proc-stats.js';

export interface LoadOptions extends Omit<Job, 'procIndex' | 'procs' | 'register'> {
  /** Generator processes; `conns`, `senders`, `rate` and `register` are totals split among them. */
  procs: number;
  register: User[];
  warmupMs: number;
  durationMs: number;
  /** Server process to sample (CPU, peak RSS); omitted: no server figures. */
  serverPid?: number;
  /** Called as the measured window opens and as it closes (e.g. to scrape the server's metrics over exactly that window). */
  onWindow?: (edge: 'open' | 'close') => Promise<void>;
  /** Time allowed for setup (registering and connecting everything). */
  setupTimeoutMs?: number;
  /**
   * Before the load starts, wait up to this long for the machine to be quiet (other programs
   * using under 0.25 cores over 250 ms), so a shared machine disturbs the figures less. 0: no wait.
   */
  quietWaitMs?: number;
}

export type LatencySummary = ReturnType<Histogram['summaryMs']>;

export interface LoadResult {
  mode: Job['mode'];
  protocol: Job['protocol'];
  procs: number;
  conns: number;
  senders: number;
  window: number;
  /** Offered rate (open loop), 0 for closed loop. */
  rate: number;
  seconds: number;
  /** Completed calls per second (chat: messages acknowledged to their senders; connect: handshakes). */
  callsPerSec: number;
  /** Chat: copies delivered per second over all subscribers. */
  deliveredPerSec: number;
  /** How long the run waited for other programs to calm down before starting. */
  quietWaitedMs: number;
  /** Round trip (echo, request, chat sender) or handshake (connect) latency. */
  latencyMs: LatencySummary;
  /** Chat: sender-to-subscriber delivery latency of every copy. */
  deliveryMs: LatencySummary;
  errorsPerSec: number;
  /** Open loop: calls not sent because a connection's backlog was full. */
  skipped: number;
  server: { cpuSeconds: number; cpuCores: number; cpuSecondsPer1kCalls: number; peakRssMiB: number } | null;
  /** The generator's own CPU use in cores (near `procs` means the generator is the bottleneck). */
  loadgenCpuCores: number;
  /** The worst generator process's event-loop delay p99 / max over the window (ms). */
  loadgenLoopDelayMs: { p99: number; max: number };
  /**
   * Cores busy with anything but the server and the generator during the window (other programs
   * on a shared machine): above ~0.1 the figures are disturbed.
   */
  otherCpuCores: number;
  totals: TotalFigures & { expectedDelivered: number };
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

/** Split `total` over `n` parts, the first ones taking the remainder. */
export function split(total: number, n: number, i: number): number {
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

class Child {
  readonly process: ChildProcess;
  readonly #queue: Report[] = [];
  #waiter: ((r: Report) => void) | null = null;
  exited = false;

  constructor() {
    // LOADGEN_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) profiles the generator itself.
    const execArgv = process.env.LOADGEN_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    this.process = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced', execArgv });
    this.process.on('message', (r: Report) => {
      if (this.#waiter !== null) {
        const w = this.#waiter;
        this.#waiter = null;
        w(r);
      } else this.#queue.push(r);
    });
    this.process.on('exit', (code) => {
      this.exited = true;
      if (this.#waiter !== null) this.#waiter({ type: 'failed', message: `generator process exited (code ${code})` });
    });
  }

  send(command: Command): void {
    if (!this.exited) this.process.send(command);
  }

  /** Next report of `type`; a `failed` report or a timeout rejects. */
  next<T extends Report['type']>(type: T, timeoutMs: number): Promise<Extract<Report, { type: T }>> {
    return new Promise((resolve, reject) => {
      const take = (r: Report) => {
        clearTimeout(timer);
        if (r.type === type) resolve(r as Extract<Report, { type: T }>);
        else if (r.type === 'failed') reject(new Error(`load generator: ${r.message}`));
        else reject(new Error(`load generator: expected '${type}', got '${r.type}'`));
      };
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new Error(`load generator: no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      const queued = this.#queue.shift();
      if (queued !== undefined) take(queued);
      else if (this.exited) take({ type: 'failed', message: 'generator process exited' });
      else this.#waiter = take;
    });
  }

  /** Ask to exit, then kill after a grace period. */
  async end(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.send({ type: 'exit' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

/** Wait `ms` of measured load (the phases of a run are timed, not waited on for readiness). */
function phase(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sample machine-wide CPU in 250 ms slices until under 0.25 busy cores or `maxMs` passed; returns the time waited. */
async function awaitQuiet(maxMs: number): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < maxMs) {
    const b0 = machineBusySeconds();
    const t0 = performance.now();
    await phase(250);
    const busy = (machineBusySeconds() - b0) / ((performance.now() - t0) / 1000);
    if (busy < 0.25) break;
  }
  return Math.round(performance.now() - start);
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { procs, warmupMs, durationMs, serverPid, quietWaitMs = 0, setupTimeoutMs: _setup, onWindow, ...base } = options;
  const setupTimeoutMs = options.setupTimeoutMs ?? Math.max(120_000, 2 * base.timeoutMs);
  if (!Number.isInteger(procs) || procs < 1) throw new RangeError('procs must be a positive integer');
  const children = Array.from({ length: procs }, () => new Child());
  const drainMs = base.timeoutMs + 5000;
  try {
    const perUser = Math.ceil(base.register.length / procs);
    children.forEach((c, i) => {
      const job: Job = {
        ...base,
        procIndex: i,
        procs,
        conns: split(base.conns, procs, i),
        senders: Math.min(split(base.senders, procs, i), split(base.conns, procs, i) || split(base.senders, procs, i)),
        rate: base.rate / procs,
        register: base.register.slice(i * perUser, (i + 1) * perUser),
        storm: base.storm && { ...base.storm, concurrency: Math.max(1, split(base.storm.concurrency, procs, i)), max: split(base.storm.max, procs, i) },
      };
      c.send({ type: 'setup', job });
    });
    await Promise.all(children.map((c) => c.next('ready', setupTimeoutMs)));
    const quietWaitedMs = await awaitQuiet(quietWaitMs);
    for (const c of children) c.send({ type: 'go' });
    await phase(warmupMs);
    await onWindow?.('open');
    const cpu0 = serverPid === undefined ? 0 : cpuSeconds(serverPid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    for (const c of children) c.send({ type: 'mark' });
    await phase(durationMs);
    const cpu1 = serverPid === undefined ? 0 : cpuSeconds(serverPid);
    const busy1 = machineBusySeconds();
    const wallSeconds = (performance.now() - t0) / 1000;
    await onWindow?.('close');
    for (const c of children) c.send({ type: 'stop' });
    const stopped = await Promise.all(children.map((c) => c.next('stopped', drainMs + durationMs)));
    const sentTotal = stopped.reduce((s, r) => s + r.sent, 0);
    for (const c of children) c.send({ type: 'collect', expectedPerConn: sentTotal });
    const finals = await Promise.all(children.map((c) => c.next('final', drainMs)));
    const peak = serverPid === undefined ? 0 : peakRssMiB(serverPid);
    const server = serverPid === undefined ? null : { cpu: cpu1 - cpu0, seconds: wallSeconds, peak };
    const result = merge(options, stopped.map((s) => s.window), finals.map((f) => f.totals), server, (busy1 - busy0) / wallSeconds);
    result.quietWaitedMs = quietWaitedMs;
    return result;
  } finally {
    await Promise.all(children.map((c) => c.end()));
  }
}

function merge(
  options: LoadOptions,
  windows: WindowFigures[],
  finals: TotalFigures[],
  server: { cpu: number; seconds: number; peak: number } | null,
  busyCores: number,
): LoadResult {
  const latency = new Histogram();
  const delivery = new Histogram();
  let completed = 0;
  let delivered = 0;
  let errors = 0;
  let skipped = 0;
  let loadgenCpu = 0;
  let seconds = 0;
  for (const w of windows) {
    latency.merge(Histogram.fromJSON(w.latency));
    delivery.merge(Histogram.fromJSON(w.delivery));
    completed += w.completed;
    delivered += w.delivered;
    errors += w.errors;
    skipped += w.skipped;
    loadgenCpu += w.cpuSeconds;
    seconds += w.seconds / windows.length;
  }
  const totals = finals.reduce<TotalFigures & { expectedDelivered: number }>(
    (t, f) => ({
      sent: t.sent + f.sent,
      completed: t.completed + f.completed,
      delivered: t.delivered + f.delivered,
      errors: t.errors + f.errors,
      other: t.other + f.other,
      dropped: t.dropped + f.dropped,
      drained: t.drained && f.drained,
      errorSamples: [...t.errorSamples, ...f.errorSamples].slice(0, 5),
      expectedDelivered: 0,
    }),
    { sent: 0, completed: 0, delivered: 0, errors: 0, other: 0, dropped: 0, drained: true, errorSamples: [], expectedDelivered: 0 },
  );
  totals.expectedDelivered = options.mode === 'chat' ? totals.sent * options.conns : 0;
  const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    mode: options.mode,
    protocol: options.protocol,
    procs: options.procs,
    conns: options.conns,
    senders: options.mode === 'chat' ? options.senders : options.conns,
    window: options.window,
    rate: options.rate,
    seconds: round(seconds, 3),
    callsPerSec: round(completed / seconds),
    deliveredPerSec: round(delivered / seconds),
    quietWaitedMs: 0,
    latencyMs: latency.summaryMs(),
    deliveryMs: delivery.summaryMs(),
    errorsPerSec: round(errors / seconds),
    skipped,
    server:
      server === null
        ? null
        : {
            cpuSeconds: round(server.cpu, 2),
            cpuCores: round(server.cpu / server.seconds, 2),
            cpuSecondsPer1kCalls: completed === 0 ? 0 : round((server.cpu / completed) * 1000, 4),
            peakRssMiB: round(server.peak),
          },
    loadgenCpuCores: round(loadgenCpu / seconds, 2),
    loadgenLoopDelayMs: {
      p99: round(Math.max(0, ...windows.map((w) => w.loopDelayMs.p99)), 2),
      max: round(Math.max(0, ...windows.map((w) => w.loopDelayMs.max)), 2),
    },
    otherCpuCores: round(Math.max(0, busyCores - loadgenCpu / seconds - (server === null ? 0 : server.cpu / server.seconds)), 2),
    totals,
  };
}
