/**
 * @module main/metrics-registry
 * `GET /metrics` through prom-client: a registry per server (never prom-client's global one)
 * holding the lexicons metrics, plus Node's default process metrics (event-loop lag, GC, heap,
 * CPU, file descriptors) in one registry per process (they describe the process, and their GC
 * observer and event-loop monitor cannot be stopped, so a process that starts many servers, as
 * the tests do, creates them once).
 *
 * The hot paths only bump plain numbers (main/metrics.ts); every lexicons metric here reads them
 * in its prom-client `collect()` callback, i.e. only when scraped.
 *
 * Two expositions: OpenMetrics 1.0 when the scraper asks for it (`Accept:
 * application/openmetrics-text`), Prometheus text 0.0.4 otherwise. prom-client fixes the format
 * per registry and renames counters in place while rendering OpenMetrics, so each format has its
 * own registries and metric objects (the OpenMetrics ones are built on the first such scrape).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type OpenMetricsContentType, type PrometheusContentType } from 'prom-client';
import type { LivePaths } from '../live-job-contract.js';
import type { StoreStats } from '../storage/api.js';
import type { WalStats } from '../storage/wal.js';
import type { BucketHistogram, Metrics } from './metrics.js';

type ContentType = PrometheusContentType | OpenMetricsContentType;
type AnyRegistry = Registry<ContentType>;

function newRegistry(contentType: ContentType): AnyRegistry {
  const registry = new Registry<ContentType>();
  registry.setContentType(contentType);
  return registry;
}

/** What a scrape reads besides the counters: read once per scrape. */
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
  /** Live queries held, and the rows (or groups) of their last results kept on the main thread. */
  live?: { queries: number; rows: number; paths: LivePaths };
}

export interface MetricsSources {
  counters: Metrics;
  gauges(): Gauges;
}

export interface Exposition {
  contentType: string;
  body: string;
}

/** True when an Accept header asks for OpenMetrics (the format Prometheus negotiates first). */
export function wantsOpenMetrics(accept: string): boolean {
  return /(^|,)\s*application\/openmetrics-text\s*(;|,|$)/i.test(accept);
}

const processRegistries = new Map<ContentType, AnyRegistry>();

/** Node's default metrics, once per process and format. */
function processRegistry(contentType: ContentType): AnyRegistry {
  let registry = processRegistries.get(contentType);
  if (!registry) {
    registry = newRegistry(contentType);
    collectDefaultMetrics({ register: registry });
    processRegistries.set(contentType, registry);
  }
  return registry;
}

/** The `/metrics` of one server. */
export class ServerMetrics {
  readonly #sources: MetricsSources;
  readonly #registries = new Map<ContentType, AnyRegistry>();
  /** The gauges of the scrape in progress (read once, then by every collect()). */
  #current: Gauges | undefined;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
  }

  /** Renders the exposition the `Accept` header asks for. */
  async render(accept = ''): Promise<Exposition> {
    const contentType: ContentType = wantsOpenMetrics(accept) ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE;
    let registry = this.#registries.get(contentType);
    if (!registry) {
      registry = newRegistry(contentType);
      this.#register(registry);
      this.#registries.set(contentType, registry);
    }
    this.#current = this.#sources.gauges();
    const merged = Registry.merge([registry, processRegistry(contentType)] as Array<Registry<PrometheusContentType>>) as AnyRegistry;
    return { contentType, body: await merged.metrics() };
  }

  #gauges(): Gauges {
    return (this.#current ??= this.#sources.gauges());
  }

  #register(registry: AnyRegistry): void {
    const c = this.#sources.counters;
    const g = () => this.#gauges();
    const registers = [registry];
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(Math.max(0, read()));
        },
      });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('lexicons_connections', 'Open WebSocket connections.', () => g().connections);
    counter('lexicons_connections_admitted_total', 'Connections admitted since start.', () => c.connectionsAdmitted);
    counter('lexicons_connections_rejected_total', 'Connections refused by Headers, gate or anonymous policy.', () => c.connectionsRejected);
    counter('lexicons_untrusted_denied_total', 'Upgrades refused because the address is not trusted.', () => c.untrustedDenied);
    counter('lexicons_frames_total', 'Inbound frames accepted for execution.', () => c.framesTotal);
    counter('lexicons_signals_total', 'Signal calls executed.', () => c.signalsTotal);
    gauge('lexicons_signals_per_second', 'Signal calls per second, averaged over the last 10 s.', () => Math.round(c.signalsPerSecond() * 100) / 100);
    counter('lexicons_errors_total', 'Errors returned to callers.', () => c.errorsTotal);
    counter('lexicons_rate_limited_total', 'Frames refused by the per-connection rate limit.', () => c.rateLimited);
    counter('lexicons_batches_total', 'Pool batches executed.', () => c.batchesTotal);
    counter('lexicons_batch_units_total', 'Units (frames, connects, disconnects) carried by batches.', () => c.batchUnitsTotal);
    counter('lexicons_batches_to_idle_worker_total', 'Batches handed over while fewer jobs than workers were in flight: each wakes a sleeping worker.', () => c.batchesToIdleWorker);
    new Counter({
      name: 'lexicons_batches_by_worker_total',
      help: 'Batches per worker thread (label: its threadId): how the dispatcher spreads jobs over the workers.',
      labelNames: ['worker'],
      registers,
      collect() {
        this.reset();
        for (const [worker, n] of c.batchesByWorker) this.inc({ worker: String(worker) }, n);
      },
    });
    counter('lexicons_txn_attempts_total', 'Transaction attempts (more than batches means conflicts were retried).', () => c.txnAttemptsTotal);
    counter('lexicons_txn_rerun_calls_total', 'Calls run again after a conflict (the units after the first invalidated one, or a whole batch).', () => c.txnRerunCallsTotal);
    counter('lexicons_execution_timeouts_total', 'Jobs aborted by the execution time limit.', () => c.timeouts);
    counter('lexicons_worker_failures_total', 'Jobs lost to a crashed worker.', () => c.workerFailures);
    counter('lexicons_cluster_fanout_frames_total', 'Cluster mode: publications of other nodes received from the fan-out partitions this node reads.', () => c.clusterFanoutFrames);
    gauge('lexicons_channels', 'Channels (declared and run-time).', () => g().channels);
    gauge('lexicons_pool_workers', 'Worker threads in the pool.', () => g().workers);
    gauge('lexicons_pool_queue_depth', 'Units queued on the main thread plus jobs queued in the pool.', () => g().queuedUnits + g().poolQueue);
    gauge('lexicons_pool_jobs_in_flight', 'Pool jobs running or queued in the pool.', () => g().inFlightJobs);
    gauge('lexicons_uptime_seconds', 'Seconds since the server started.', () => Math.round(g().uptimeSeconds));
    gauge('lexicons_commit_id', 'Latest committed transaction id.', () => g().store?.commitId ?? 0);
    gauge('lexicons_live_queries', 'Live queries held by the connections.', () => g().live?.queries ?? 0);
    gauge('lexicons_live_rows', 'Rows and groups of the live queries\' last results, kept on the main thread.', () => g().live?.rows ?? 0);
    new Counter({
      name: 'lexicons_live_evaluations_total',
      help: 'Live queries per refresh path: skipped (untouched), incremental, fallback (read whole: the written rows were not known), rerun (whole by design).',
      labelNames: ['path'],
      registers,
      collect() {
        this.reset();
        for (const [path, n] of Object.entries(g().live?.paths ?? {})) this.inc({ path }, n);
      },
    });
    for (const [name, help, key] of [
      ['lexicons_table_rows', 'Live rows per table.', 'rows'],
      ['lexicons_table_bytes', 'Shared memory bytes per table.', 'bytes'],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['table'],
        registers,
        collect() {
          this.reset();
          for (const [table, t] of Object.entries(g().store?.tables ?? {})) this.set({ table }, t[key]);
        },
      });
    }
    counter('lexicons_wal_records_total', 'Write-ahead log records appended since start.', () => g().wal?.written ?? 0);
    counter('lexicons_wal_durable_records_total', 'Write-ahead log records known to be on disk.', () => g().wal?.durable ?? 0);
    counter('lexicons_wal_fsyncs_total', 'fdatasync calls of the write-ahead log.', () => g().wal?.fsyncs ?? 0);
    gauge('lexicons_wal_failed', '1 when an I/O failure disabled the log (commits are refused).', () => (g().wal?.failed ? 1 : 0));
    new PlainHistogram('lexicons_call_duration_seconds', 'Signal call latency: the round trip of the batch that carried the call (dispatch to result), once per call.', c.callSeconds, registry);
    new PlainHistogram('lexicons_batch_duration_seconds', 'Round trip of a batch job (dispatch to result).', c.batchSeconds, registry);
    new PlainHistogram('lexicons_batch_size', 'Units carried per batch job.', c.batchSize, registry);
    new PlainHistogram('lexicons_commit_duration_seconds', 'Commit of a batch in its worker (validation, write-ahead log append, publication).', c.commitSeconds, registry);
    new PlainHistogram('lexicons_durable_wait_seconds', 'Wait of a batch in its worker until its commits were durable (the fdatasync under --fsync always).', c.durableWaitSeconds, registry);
    new PlainHistogram('lexicons_publish_fanout', 'Recipients per publication to channels.', c.fanout, registry);
    new PlainHistogram('lexicons_queue_wait_seconds', 'Wait of a unit (frame, connection attempt, disconnection) on the main thread from arrival to the dispatch of its batch.', c.queueWaitSeconds, registry);
    new PlainHistogram('lexicons_batch_run_seconds', 'Time a worker spent on a batch job, start to result (the batch round trip minus this is the pool hand-off and thread wake-ups).', c.runSeconds, registry);
    new PlainHistogram('lexicons_history_wait_seconds', 'Wait of a publication to a history channel for the frame of an earlier commit (frames go out in offset order).', c.historyWaitSeconds, registry);
    new PlainHistogram('lexicons_batch_apply_seconds', 'Main-thread time applying a batch result (replies, fan-out): the event loop serves nothing else meanwhile.', c.applySeconds, registry);
  }
}

/**
 * A prom-client Histogram whose samples come from a {@link BucketHistogram} (plain numbers the
 * hot path fills) instead of `observe()` calls: only its exposition is prom-client's.
 */
class PlainHistogram extends Histogram {
  readonly #source: BucketHistogram;
  readonly #name: string;
  readonly #help: string;

  constructor(name: string, help: string, source: BucketHistogram, registry: AnyRegistry) {
    super({ name, help, buckets: [...source.bounds], registers: [registry] });
    this.#source = source;
    this.#name = name;
    this.#help = help;
  }

  /** What prom-client's registry renders (it prefers this method to `get()`). */
  async getForPromString(): Promise<Awaited<ReturnType<Histogram['get']>>> {
    const s = this.#source;
    const name = this.#name;
    const values: Array<{ labels: { le?: number | '+Inf' }; value: number; metricName: string }> = s
      .cumulative()
      .map(({ le, count }) => ({ labels: { le }, value: count, metricName: `${name}_bucket` }));
    values.push({ labels: {}, value: s.sum, metricName: `${name}_sum` }, { labels: {}, value: s.count, metricName: `${name}_count` });
    return { name, help: this.#help, type: 'histogram', values, aggregator: 'sum' } as unknown as Awaited<ReturnType<Histogram['get']>>;
  }

  override get(): ReturnType<Histogram['get']> {
    return this.getForPromString();
  }
}
