/**
 * @module main/metrics
 * Counters kept by the main thread and their Prometheus text rendering for `GET /metrics`.
 * Counters only grow (use `rate()` in Prometheus); `lexicons_signals_per_second` is a
 * convenience gauge averaged over the last 10 seconds.
 */
import type { StoreStats } from '../storage/api.js';
import type { WalStats } from '../storage/wal.js';

const WINDOW_SECONDS = 10;

export interface Gauges {
  connections: number;
  channels: number;
  workers: number;
  /** Units waiting on the main thread for a batch. */
  queuedUnits: number;
  /** Batches in flight (running or waiting in piscina's queue). */
  inFlightJobs: number;
  /** Jobs waiting in piscina's queue. */
  poolQueue: number;
  store: StoreStats | undefined;
  wal: WalStats | undefined;
  uptimeSeconds: number;
}

export class Metrics {
  connectionsTotal = 0;
  connectionsRejected = 0;
  untrustedDenied = 0;
  framesTotal = 0;
  signalsTotal = 0;
  errorsTotal = 0;
  batchesTotal = 0;
  batchUnitsTotal = 0;
  txnAttemptsTotal = 0;
  rateLimited = 0;
  timeouts = 0;
  workerFailures = 0;
  readonly #buckets = new Float64Array(WINDOW_SECONDS);
  #bucketSecond = Math.floor(Date.now() / 1000);

  #advance(now: number): void {
    const second = Math.floor(now / 1000);
    const steps = Math.min(WINDOW_SECONDS, second - this.#bucketSecond);
    for (let i = 1; i <= steps; i++) this.#buckets[(this.#bucketSecond + i) % WINDOW_SECONDS] = 0;
    if (second > this.#bucketSecond) this.#bucketSecond = second;
  }

  recordSignals(calls: number, errors: number, now = Date.now()): void {
    this.signalsTotal += calls;
    this.errorsTotal += errors;
    this.#advance(now);
    this.#buckets[this.#bucketSecond % WINDOW_SECONDS]! += calls;
  }

  signalsPerSecond(now = Date.now()): number {
    this.#advance(now);
    let sum = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) if (i !== this.#bucketSecond % WINDOW_SECONDS) sum += this.#buckets[i]!;
    return sum / (WINDOW_SECONDS - 1);
  }

  render(g: Gauges): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number, labels?: Record<string, string>) => {
      if (!lines.some((l) => l.startsWith(`# TYPE ${name} `))) {
        lines.push(`# HELP ${name} ${help}`);
        lines.push(`# TYPE ${name} ${type}`);
      }
      const l = labels ? `{${Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`).join(',')}}` : '';
      lines.push(`${name}${l} ${Number.isFinite(value) ? value : 0}`);
    };
    metric('lexicons_connections', 'gauge', 'Open WebSocket connections.', g.connections);
    metric('lexicons_connections_total', 'counter', 'Connections admitted since start.', this.connectionsTotal);
    metric('lexicons_connections_rejected_total', 'counter', 'Connections refused by Headers, gate or anonymous policy.', this.connectionsRejected);
    metric('lexicons_untrusted_denied_total', 'counter', 'Upgrades refused because the address is not trusted.', this.untrustedDenied);
    metric('lexicons_frames_total', 'counter', 'Inbound frames accepted for execution.', this.framesTotal);
    metric('lexicons_signals_total', 'counter', 'Signal calls executed.', this.signalsTotal);
    metric('lexicons_signals_per_second', 'gauge', 'Signal calls per second, averaged over the last 10 s.', Math.round(this.signalsPerSecond() * 100) / 100);
    metric('lexicons_errors_total', 'counter', 'Errors returned to callers.', this.errorsTotal);
    metric('lexicons_rate_limited_total', 'counter', 'Frames refused by the per-connection rate limit.', this.rateLimited);
    metric('lexicons_batches_total', 'counter', 'Pool batches executed.', this.batchesTotal);
    metric('lexicons_batch_units_total', 'counter', 'Units (frames, connects, disconnects) carried by batches.', this.batchUnitsTotal);
    metric('lexicons_txn_attempts_total', 'counter', 'Transaction attempts (more than batches means conflicts were retried).', this.txnAttemptsTotal);
    metric('lexicons_execution_timeouts_total', 'counter', 'Jobs aborted by the execution time limit.', this.timeouts);
    metric('lexicons_worker_failures_total', 'counter', 'Jobs lost to a crashed worker.', this.workerFailures);
    metric('lexicons_channels', 'gauge', 'Channels (declared and run-time).', g.channels);
    metric('lexicons_pool_workers', 'gauge', 'Worker threads in the pool.', g.workers);
    metric('lexicons_pool_queue_depth', 'gauge', 'Units queued on the main thread plus jobs queued in the pool.', g.queuedUnits + g.poolQueue);
    metric('lexicons_pool_jobs_in_flight', 'gauge', 'Pool jobs running or queued in the pool.', g.inFlightJobs);
    metric('lexicons_uptime_seconds', 'gauge', 'Seconds since the server started.', Math.round(g.uptimeSeconds));
    if (g.store) {
      metric('lexicons_commit_id', 'counter', 'Latest committed transaction id.', g.store.commitId);
      for (const [table, t] of Object.entries(g.store.tables)) metric('lexicons_table_rows', 'gauge', 'Live rows per table.', t.rows, { table });
      for (const [table, t] of Object.entries(g.store.tables)) metric('lexicons_table_bytes', 'gauge', 'Shared memory bytes per table.', t.bytes, { table });
    }
    if (g.wal) {
      metric('lexicons_wal_records_total', 'counter', 'Write-ahead log records appended since start.', g.wal.written);
      metric('lexicons_wal_durable_records_total', 'counter', 'Write-ahead log records known to be on disk.', g.wal.durable);
      metric('lexicons_wal_fsyncs_total', 'counter', 'fdatasync calls of the write-ahead log.', g.wal.fsyncs);
      metric('lexicons_wal_failed', 'gauge', '1 when an I/O failure disabled the log (commits are refused).', g.wal.failed === null ? 0 : 1);
    }
    return lines.join('\n') + '\n';
  }
}
