/**
 * @module main/metrics
 * What the main thread counts on its hot paths, as plain numbers: counters (`framesTotal++`),
 * a 10-second window for `lexicons_signals_per_second`, and {@link BucketHistogram}s (call and
 * batch latency, batch size, commit and durable-wait time reported by the workers, fan-out per
 * publication). Nothing here formats or allocates; main/metrics-registry.ts reads these numbers
 * when `/metrics` is scraped (prom-client `collect()`).
 */

const WINDOW_SECONDS = 10;

/**
 * A histogram kept as plain numbers: one count per bucket (not cumulative), a sum and a count.
 * `observe` is a short linear scan over the bounds: cheap enough for once per batch or per
 * publication; the exposition (cumulative buckets, `+Inf`) is built on scrape.
 */
export class BucketHistogram {
  /** Upper bounds, ascending; the last bucket (`+Inf`) is implicit. */
  readonly bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts `value` `weight` times (e.g. a batch's latency once per call it carried). */
  observe(value: number, weight = 1): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]! += weight;
    this.sum += value * weight;
    this.count += weight;
  }

  /** Cumulative counts per upper bound, `+Inf` last (the exposition's `_bucket` samples). */
  cumulative(): Array<{ le: number | '+Inf'; count: number }> {
    const out: Array<{ le: number | '+Inf'; count: number }> = [];
    let running = 0;
    for (let i = 0; i < this.counts.length; i++) {
      running += this.counts[i]!;
      out.push({ le: i < this.bounds.length ? this.bounds[i]! : '+Inf', count: running });
    }
    return out;
  }
}

/** Bounds in seconds for latencies from 100 µs to 10 s. */
export const LATENCY_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
/** Bounds for counts (units per batch, recipients per publication). */
export const SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384];

export class Metrics {
  connectionsAdmitted = 0;
  connectionsRejected = 0;
  untrustedDenied = 0;
  framesTotal = 0;
  signalsTotal = 0;
  errorsTotal = 0;
  batchesTotal = 0;
  batchUnitsTotal = 0;
  /** Batches handed over while fewer jobs than workers were in flight: a worker asleep in the pool's Atomics.wait had to be woken (main/dispatch.ts). */
  batchesToIdleWorker = 0;
  /** Batches per worker thread (threadId): which workers the dispatcher's policy used. */
  readonly batchesByWorker = new Map<number, number>();
  txnAttemptsTotal = 0;
  /** Calls run again because their batch's transaction conflicted (JobStats.rerunCalls). */
  txnRerunCallsTotal = 0;
  rateLimited = 0;
  timeouts = 0;
  workerFailures = 0;
  /** Cluster mode: publications of other nodes read from the fan-out partitions (main/cluster-fanout.ts). */
  clusterFanoutFrames = 0;
  /** Per call: the round trip of the batch that carried it (dispatch to result). */
  readonly callSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per batch: dispatch to result. */
  readonly batchSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per batch: units carried. */
  readonly batchSize = new BucketHistogram(SIZE_BOUNDS);
  /** Per batch, worker-reported: the commit (validation, log append, publication). */
  readonly commitSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per batch, worker-reported: the wait until the log was durable (the fsync under `always`). */
  readonly durableWaitSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per publication: recipients. */
  readonly fanout = new BucketHistogram(SIZE_BOUNDS);
  /** Per unit: arrival on the main thread to its batch's dispatch (queueing behind the connection's previous batch and the in-flight limit). */
  readonly queueWaitSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per batch, worker-reported: the worker's time on the job (the round trip minus this is pool hand-off and thread wake-ups). */
  readonly runSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per publication to a history channel that had to wait for an earlier commit's frame (offset order): the wait. */
  readonly historyWaitSeconds = new BucketHistogram(LATENCY_BOUNDS);
  /** Per batch: main-thread time applying its effects (sends, fan-out), during which the event loop serves nothing else. */
  readonly applySeconds = new BucketHistogram(LATENCY_BOUNDS);
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

  /** A batch came back: its round trip, units, calls, and the timings its worker reported. */
  recordBatch(seconds: number, units: number, calls: number, commitMs: number | undefined, durableMs: number | undefined, runMs?: number, thread?: number): void {
    this.batchSeconds.observe(seconds);
    if (thread !== undefined) this.batchesByWorker.set(thread, (this.batchesByWorker.get(thread) ?? 0) + 1);
    if (runMs !== undefined) this.runSeconds.observe(runMs / 1000);
    this.batchSize.observe(units);
    if (calls > 0) this.callSeconds.observe(seconds, calls);
    if (commitMs !== undefined) this.commitSeconds.observe(commitMs / 1000);
    if (durableMs !== undefined) this.durableWaitSeconds.observe(durableMs / 1000);
  }

  signalsPerSecond(now = Date.now()): number {
    this.#advance(now);
    let sum = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) if (i !== this.#bucketSecond % WINDOW_SECONDS) sum += this.#buckets[i]!;
    return sum / (WINDOW_SECONDS - 1);
  }
}
