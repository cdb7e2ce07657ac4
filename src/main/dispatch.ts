/**
 * @module main/dispatch
 * Batching of inbound work into pool jobs.
 *
 * Why batch: a piscina run costs ~30 µs of overhead, so one job per message would cap the
 * server at a small fraction of what uWS carries. Inbound units (frames, connection attempts,
 * disconnections) are queued per connection; a flush (setImmediate) packs the units of many
 * connections into one job, keeping at most `2 × workers × jobsPerWorker` jobs in flight (see
 * the spreading policy below; `jobsPerWorker` is 1, or more on a cluster node, whose jobs wait a
 * Redis round trip for their commit: main/pool.ts). Under light load a job carries what arrived meanwhile; under load jobs fill up
 * while others run. When a
 * result arrives, the next job is handed over first and the result's effects applied after, so
 * the worker runs while the main thread fans out (one thread hand-off less on the critical path).
 *
 * Spreading over workers (adaptive): a second job in flight (on a second worker, or queued behind
 * the first) is started only when the first is not keeping up: the oldest job in flight has run
 * `spreadAfterMs` (1 ms) while units wait, or more units wait than one job takes. Otherwise the
 * units wait for the running job's result and go together in the next job, on the same warm
 * worker (piscina gives a job to the first idle worker, so with one job in flight it is always
 * the same one). Why: at light load, jobs alternating between workers each wake a sleeping
 * thread (Atomics.wait: a futex wake, slow on a small VM), run on cold caches, and with
 * `--workers 2` four threads (main, two workers, the client) share two cores: measured, a w2
 * job's round trip was ~2x w1's at the same load. Once spread, every in-flight slot is used
 * (up to 2 x workers) until a worker finishes with nothing waiting: the load then fits one job at
 * a time again. A deferred unit arms a timer, so a slow job cannot hold other connections' units
 * back longer than `spreadAfterMs` even when nothing else arrives.
 *
 * Several jobs per worker (a cluster node): the in-flight limit adapts to conflicts (additive
 * increase, multiplicative decrease, like TCP's window). A job started while earlier jobs' records
 * are undecided runs at a snapshot without them; when they write what it reads, certification
 * rejects its record and it re-runs, a Redis round trip and a back-off each. So a result whose job
 * re-ran (`stats.attempts > 1`) halves the limit, down to one job per worker (the behaviour before
 * pipelining), and each result without a re-run raises it by 1 / limit (about one more job per
 * round of results), up to `2 × workers × jobsPerWorker`. Measured (bench/cluster.ts, 2 nodes,
 * transfers between 10 accounts): with a fixed 4 per worker the p99 doubled (70 -> 145 ms);
 * writes that do not conflict (chat) keep the full limit.
 *
 * Ordering: a connection has at most one job in flight (`conn.busy`); its further units wait
 * for the next job. Units of different connections run in parallel on different workers.
 *
 * Failures (main/dispatch-failure.ts): when a job's worker is aborted (time limit) or dies, the
 * unit that was running gets the error, units the job had already committed (a batch re-run one
 * transaction per call) get a "saved but reply lost" error and never run again, and the other
 * units are put back at the front of their connections' queues.
 */
import { optionError } from '../errors.js';
import { encodeBatch, UNIT_FRAME, type BatchResult, type ConnectionSnapshot, type Unit } from '../job-contract.js';
import type { SocketConnection } from './socket-connection.js';
import { applyEffects, applyPacked } from './effects.js';
import { failBatch, releaseKeys, type Batch } from './dispatch-failure.js';
import type { Hub } from './hub.js';
import type { JobRunner } from './pool.js';

/** How long the oldest job in flight runs, with units waiting, before a second job is started. */
export const SPREAD_AFTER_MS = 1;

export interface DispatcherOptions {
  /** Overrides {@link SPREAD_AFTER_MS}; 0 spreads at once (every in-flight slot used, as before the policy). */
  spreadAfterMs?: number;
  /** Jobs a worker runs at once (main/pool.ts: 1, or CLUSTER_JOBS_PER_WORKER on a cluster node); default 1. */
  jobsPerWorker?: number;
}

/**
 * Env `LEXICONS_SPREAD_AFTER_MS` (a tuning knob for measurements: bench/README.md "Tail latency"):
 * a number of ms >= 0, or undefined when unset.
 */
export function spreadAfterMsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.LEXICONS_SPREAD_AFTER_MS;
  if (text === undefined || text === '') return undefined;
  const ms = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(ms)) throw optionError(`LEXICONS_SPREAD_AFTER_MS must be a number of milliseconds >= 0, got ${JSON.stringify(text)}`);
  return ms;
}

/** Units per job, frames taken from one connection per job, bytes of frame text per job. */
export const MAX_UNITS_PER_JOB = 256;
export const MAX_UNITS_PER_CONN = 32;
export const MAX_BYTES_PER_JOB = 4 << 20;

export class Dispatcher {
  readonly #hub: Hub;
  readonly #pool: JobRunner;
  readonly #maxInFlight: number;
  /** The adaptive limit's floor: one job per worker (equal to the maximum with one job per worker: no adapting). */
  readonly #minInFlight: number;
  /** Jobs allowed in flight now, between {@link #minInFlight} and {@link #maxInFlight} (see the module comment). */
  #limit: number;
  readonly #workers: number;
  readonly #spreadAfterMs: number;
  readonly #ready = new Set<SocketConnection>();
  #inFlight = 0;
  /** Start times of the jobs in flight, by job number, oldest first (Map keeps insertion order). */
  readonly #started = new Map<number, number>();
  #jobs = 0;
  /** True while the load needs more than one job at a time (see the module comment). */
  #spread = false;
  /** Re-checks deferred units once the oldest job in flight is `spreadAfterMs` old. */
  #spreadTimer: NodeJS.Timeout | null = null;
  /** Batches whose results wait for their turn to publish to history channels. */
  #applying = 0;
  #scheduled = false;
  #idle: Array<() => void> = [];

  constructor(hub: Hub, pool: JobRunner, workers: number, options: DispatcherOptions = {}) {
    this.#hub = hub;
    this.#pool = pool;
    this.#workers = workers;
    const perWorker = options.jobsPerWorker ?? 1;
    this.#maxInFlight = Math.max(2, 2 * workers * perWorker);
    this.#minInFlight = perWorker > 1 ? workers : this.#maxInFlight;
    this.#limit = this.#maxInFlight;
    this.#spreadAfterMs = options.spreadAfterMs ?? SPREAD_AFTER_MS;
  }

  /** True while jobs are spread over every in-flight slot (load beyond one job at a time). */
  get spread(): boolean {
    return this.#spread;
  }

  /** Jobs allowed in flight now (the adaptive limit of a cluster node; else the fixed one). */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  /** Jobs in flight. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Units waiting on the main thread. */
  get queued(): number {
    let n = 0;
    for (const conn of this.#ready) n += conn.queue.length;
    return n;
  }

  enqueue(conn: SocketConnection, unit: Unit): void {
    conn.queue.push(unit);
    conn.queuedAt.push(performance.now());
    if (!conn.busy) this.#ready.add(conn);
    this.#schedule();
  }

  /** Resolves when nothing is queued or in flight. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #isIdle(): boolean {
    return this.#inFlight === 0 && this.#ready.size === 0 && this.#applying === 0;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    this.#dispatchReady();
    this.#checkIdle();
  }

  #dispatchReady(): void {
    while (this.#inFlight < this.#limit && this.#ready.size > 0) {
      if (this.#inFlight > 0 && !this.#spread && !this.#mustSpread()) return;
      this.#dispatch(this.#build());
    }
  }

  /**
   * Whether units that wait while a job is in flight justify another job now: the oldest job in
   * flight is `spreadAfterMs` old, or more units wait than one job takes. If not, a timer re-checks
   * when the oldest job reaches that age (its result usually comes first and takes the units).
   */
  #mustSpread(): boolean {
    const oldest = this.#started.values().next().value ?? performance.now();
    const age = performance.now() - oldest;
    if (age >= this.#spreadAfterMs || this.#moreThanOneJob()) {
      this.#spread = true;
      this.#clearSpreadTimer();
      return true;
    }
    if (this.#spreadTimer === null) {
      this.#spreadTimer = setTimeout(() => {
        this.#spreadTimer = null;
        this.#flush();
      }, Math.max(1, Math.ceil(this.#spreadAfterMs - age)));
    }
    return false;
  }

  #moreThanOneJob(): boolean {
    let n = 0;
    for (const conn of this.#ready) {
      n += Math.min(conn.queue.length, MAX_UNITS_PER_CONN);
      if (n > MAX_UNITS_PER_JOB) return true;
    }
    return false;
  }

  #clearSpreadTimer(): void {
    if (this.#spreadTimer === null) return;
    clearTimeout(this.#spreadTimer);
    this.#spreadTimer = null;
  }

  #build(): Batch {
    const batch: Batch = { connections: [], units: [], owners: [] };
    const { queueWaitSeconds } = this.#hub.metrics;
    const now = performance.now();
    let bytes = 0;
    for (const conn of this.#ready) {
      if (batch.units.length >= MAX_UNITS_PER_JOB || bytes >= MAX_BYTES_PER_JOB) break;
      this.#ready.delete(conn);
      conn.busy = true;
      const index = batch.connections.push(conn) - 1;
      const take = Math.min(conn.queue.length, MAX_UNITS_PER_CONN, MAX_UNITS_PER_JOB - batch.units.length);
      let taken = 0;
      while (taken < take) {
        const unit = conn.queue[taken]!;
        if (unit.kind === UNIT_FRAME) {
          if (taken > 0 && bytes + unit.text.length > MAX_BYTES_PER_JOB) break;
          bytes += unit.text.length;
        }
        batch.units.push(unit);
        batch.owners.push(index);
        queueWaitSeconds.observe((now - (conn.queuedAt[taken] ?? now)) / 1000);
        taken++;
      }
      conn.queue.splice(0, taken);
      conn.queuedAt.splice(0, taken);
    }
    return batch;
  }

  #dispatch(batch: Batch): void {
    const snapshots: ConnectionSnapshot[] = batch.connections.map((c) => c.snapshot());
    const job = encodeBatch(snapshots, batch.units, batch.owners, this.#hub.channels.version);
    const n = batch.units.length;
    const { metrics } = this.#hub;
    if (this.#inFlight < this.#workers) metrics.batchesToIdleWorker++;
    this.#inFlight++;
    metrics.batchesTotal++;
    metrics.batchUnitsTotal += n;
    const started = performance.now();
    const number = this.#jobs++;
    this.#started.set(number, started);
    this.#pool.run<BatchResult>(job).then(
      (result) => {
        this.#inFlight--;
        this.#started.delete(number);
        this.#adapt(result.stats.attempts > 1);
        // A worker finished with nothing waiting: the load fits one job at a time again.
        if (this.#ready.size === 0) {
          this.#spread = false;
          this.#clearSpreadTimer();
        }
        // Hand the worker its next job before this one's effects are applied: the fan-out below
        // then overlaps the worker's run instead of delaying it by the apply plus one event-loop
        // turn (setImmediate). Only connections not in this batch can go (this batch's stay busy
        // until their effects are applied), so no connection's units overtake its own effects.
        this.#dispatchReady();
        const { live } = this.#hub;
        const commits = result.commits;
        if (commits !== undefined) live.committed(commits);
        if (commits === undefined || !live.active) return this.#apply(batch, result, started);
        // Read-your-writes: the replies wait until the callers' live queries show these commits.
        this.#applying++;
        live.whenShown(commits, batch.connections, () => {
          this.#applying--;
          this.#apply(batch, result, started);
        });
      },
      (err: unknown) => {
        this.#inFlight--;
        this.#started.delete(number);
        try {
          failBatch(this.#hub, batch, err);
        } finally {
          this.#release(batch.connections);
        }
      },
    );
  }

  /** A result came: halve the in-flight limit if its job re-ran, else raise it by 1 / limit (module comment). */
  #adapt(reran: boolean): void {
    if (this.#minInFlight === this.#maxInFlight) return;
    if (reran) this.#limit = Math.max(this.#minInFlight, Math.floor(this.#limit / 2));
    else this.#limit = Math.min(this.#maxInFlight, this.#limit + 1 / this.#limit);
  }

  /** Applies a batch's result (logs, metrics, effects), then releases its connections. */
  #apply(batch: Batch, result: BatchResult, started: number): void {
    // The connections are released once every effect was applied: a history publish may wait
    // for its turn (main/history-delivery.ts), and a connection's next batch must not overtake it.
    let done = true;
    const finish = (): void => {
      releaseKeys(this.#hub, batch);
      this.#release(batch.connections);
    };
    const { metrics } = this.#hub;
    try {
      const { stats } = result;
      const applyStarted = performance.now();
      metrics.recordBatch((applyStarted - started) / 1000, batch.units.length, stats.calls, stats.commitMs, stats.durableMs, stats.runMs, stats.thread);
      for (const entry of result.logs) this.#hub.log(entry.status, entry.data);
      metrics.recordSignals(stats.calls, stats.errors);
      metrics.txnAttemptsTotal += stats.attempts;
      metrics.txnRerunCallsTotal += stats.rerunCalls ?? 0;
      if (result.effects.length > 0) applyEffects(this.#hub, result.effects);
      if (result.packed) {
        done = applyPacked(this.#hub, batch.connections, result.packed, () => {
          this.#applying--;
          finish();
        });
        if (!done) this.#applying++;
      }
      metrics.applySeconds.observe((performance.now() - applyStarted) / 1000);
    } finally {
      if (done) finish();
    }
  }

  #release(connections: readonly SocketConnection[]): void {
    for (const conn of connections) {
      conn.busy = false;
      if (conn.queue.length > 0) this.#ready.add(conn);
      else if (conn.state === 'closed') this.#hub.connections.delete(conn.id);
    }
    this.#schedule();
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (!this.#isIdle() || this.#idle.length === 0) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const resolve of waiters) resolve();
  }
}
