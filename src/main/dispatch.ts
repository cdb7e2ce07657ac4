/**
 * @module main/dispatch
 * Batching of inbound work into pool jobs.
 *
 * Why batch: a piscina run costs ~30 µs of overhead, so one job per message would cap the
 * server at a small fraction of what uWS carries. Inbound units (frames, connection attempts,
 * disconnections) are queued per connection; a flush (setImmediate) packs the units of many
 * connections into one job, keeping at most `2 × workers` jobs in flight. Under light load a
 * job carries one frame (lowest latency); under load jobs fill up while others run. When a
 * result arrives, the next job is handed over first and the result's effects applied after, so
 * the worker runs while the main thread fans out (one thread hand-off less on the critical path).
 *
 * Ordering: a connection has at most one job in flight (`conn.busy`); its further units wait
 * for the next job. Units of different connections run in parallel on different workers.
 *
 * Failures: when a job's worker is aborted (time limit) or dies, the unit that was running gets
 * the error and the job's other units are put back at the front of their connections' queues
 * (nothing of that job was committed).
 */
import { ErrorCode, messageOf } from '../errors.js';
import { WireCode } from '../wire.js';
import { failFrame } from './call-replies.js';
import { encodeBatch, UNIT_CONNECT, UNIT_FRAME, type BatchResult, type ConnectionSnapshot, type Unit } from '../job-contract.js';
import type { SocketConnection } from './socket-connection.js';
import { applyEffects, applyPacked, completeUpgrade, rejectConnection } from './effects.js';
import type { Hub } from './hub.js';
import { JobFailure, type JobRunner } from './pool.js';

/** Units per job, frames taken from one connection per job, bytes of frame text per job. */
export const MAX_UNITS_PER_JOB = 256;
export const MAX_UNITS_PER_CONN = 32;
export const MAX_BYTES_PER_JOB = 4 << 20;

interface Batch {
  connections: SocketConnection[];
  units: Unit[];
  /** Connection index per unit. */
  owners: number[];
}

export class Dispatcher {
  readonly #hub: Hub;
  readonly #pool: JobRunner;
  readonly #maxInFlight: number;
  readonly #ready = new Set<SocketConnection>();
  #inFlight = 0;
  /** Batches whose results wait for their turn to publish to history channels. */
  #applying = 0;
  #scheduled = false;
  #idle: Array<() => void> = [];

  constructor(hub: Hub, pool: JobRunner, workers: number) {
    this.#hub = hub;
    this.#pool = pool;
    this.#maxInFlight = Math.max(2, 2 * workers);
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
    while (this.#inFlight < this.#maxInFlight && this.#ready.size > 0) {
      this.#dispatch(this.#build());
    }
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
    this.#inFlight++;
    const { metrics } = this.#hub;
    metrics.batchesTotal++;
    metrics.batchUnitsTotal += n;
    const started = performance.now();
    this.#pool.run<BatchResult>(job).then(
      (result) => {
        this.#inFlight--;
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
        try {
          this.#fail(batch, err);
        } finally {
          this.#release(batch.connections);
        }
      },
    );
  }

  /** Applies a batch's result (logs, metrics, effects), then releases its connections. */
  #apply(batch: Batch, result: BatchResult, started: number): void {
    // The connections are released once every effect was applied: a history publish may wait
    // for its turn (main/history-delivery.ts), and a connection's next batch must not overtake it.
    let done = true;
    const finish = (): void => {
      this.#releaseKeys(batch);
      this.#release(batch.connections);
    };
    const { metrics } = this.#hub;
    try {
      const { stats } = result;
      const applyStarted = performance.now();
      metrics.recordBatch((applyStarted - started) / 1000, batch.units.length, stats.calls, stats.commitMs, stats.durableMs, stats.runMs);
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

  /** Keys of the batch's calls that got no outcome (their job did not commit them) are released (main/sessions.ts). */
  #releaseKeys(batch: Batch, only?: ReadonlySet<Unit>): void {
    for (let i = 0; i < batch.units.length; i++) {
      const unit = batch.units[i]!;
      if (unit.kind !== UNIT_FRAME || unit.keys === undefined || (only !== undefined && !only.has(unit))) continue;
      const session = batch.connections[batch.owners[i]!]!.session;
      if (session !== null) this.#hub.sessions.release(session, unit.keys);
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

  #fail(batch: Batch, err: unknown): void {
    const failure = err instanceof JobFailure ? err : new JobFailure(ErrorCode.INTERNAL, `Internal error: ${messageOf(err)}`, -1, err);
    const { metrics, log } = this.#hub;
    if (failure.code === ErrorCode.TIMEOUT) metrics.timeouts++;
    else metrics.workerFailures++;
    // A worker that died after its commit took that commit's history publications with it, and
    // what the commit wrote (live queries).
    this.#hub.delivery.suspect();
    this.#hub.live.suspect();
    const guilty = failure.unit >= 0 && failure.unit < batch.units.length ? failure.unit : -1;
    log(failure.code === ErrorCode.TIMEOUT ? 'SIGNAL-ERROR' : 'WORKER-ERROR', {
      code: failure.code,
      message: failure.message,
      units: batch.units.length,
      guiltyUnit: guilty,
      connection: guilty >= 0 ? batch.connections[batch.owners[guilty]!]!.id : undefined,
    });
    // Put the innocent units back, in order, at the front of their connections' queues. With no
    // known culprit (the worker died before running user code) every unit fails instead, so a
    // deterministic failure cannot loop.
    const back = new Map<SocketConnection, Unit[]>();
    const failed = new Set<Unit>();
    batch.units.forEach((unit, i) => {
      const conn = batch.connections[batch.owners[i]!]!;
      if (guilty === -1 || i === guilty) {
        failed.add(unit);
        this.#failUnit(conn, unit, failure);
      } else {
        let list = back.get(conn);
        if (!list) back.set(conn, (list = []));
        list.push(unit);
      }
    });
    const now = performance.now();
    for (const [conn, list] of back) {
      conn.queue.unshift(...list);
      conn.queuedAt.unshift(...list.map(() => now));
    }
    this.#releaseKeys(batch, failed);
  }

  #failUnit(conn: SocketConnection, unit: Unit, failure: JobFailure): void {
    this.#hub.metrics.errorsTotal++;
    const code = failure.code === ErrorCode.TIMEOUT ? WireCode.TIMEOUT : WireCode.WORKER_FAILED;
    if (unit.kind === UNIT_FRAME) failFrame(conn, unit.text, failure.message, code);
    else if (unit.kind === UNIT_CONNECT) {
      completeUpgrade(conn);
      rejectConnection(this.#hub, conn, failure.message, code);
    }
  }
}
