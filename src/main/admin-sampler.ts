/**
 * @module main/admin-sampler
 * The admin page's live charts: once a second, on the main thread, {@link AdminSampler} reads the
 * counters the hot paths already keep (main/metrics.ts: calls, channel deliveries, worker-reported
 * commit times) and the process memory, and keeps the last minutes in a ring buffer. Nothing is
 * added to the per-call path: a sample is differences of plain numbers.
 */
import type { Metrics } from './metrics.js';

export interface AdminSample {
  /** Sequence number (1, 2, ...): the page asks for samples after the last one it has. */
  seq: number;
  /** ms since the Unix epoch. */
  time: number;
  /** Signal calls per second since the previous sample. */
  callsPerSecond: number;
  /** Messages delivered to channel subscribers per second (recipients of publications). */
  deliveredPerSecond: number;
  /** Mean commit time of the batches committed since the previous sample, ms (null: none). */
  commitMs: number | null;
  /** Resident set size of the process, MiB. */
  rssMiB: number;
  /** V8 heap used (main thread), MiB. */
  heapMiB: number;
  /** Shared memory of the tables, MiB. */
  storeMiB: number;
  connections: number;
}

export interface SamplerSources {
  readonly metrics: Metrics;
  connections(): number;
  storeBytes(): number;
}

const MIB = 1024 * 1024;

/** Samples once per `intervalMs` into a ring of `capacity` samples (default: 5 minutes). */
export class AdminSampler {
  readonly intervalMs: number;
  readonly #sources: SamplerSources;
  readonly #ring: AdminSample[] = [];
  readonly #capacity: number;
  #seq = 0;
  #last: { time: number; calls: number; delivered: number; commitSum: number; commitCount: number };
  #timer: NodeJS.Timeout | null = null;

  constructor(sources: SamplerSources, options: { capacity?: number; intervalMs?: number } = {}) {
    this.#sources = sources;
    this.#capacity = options.capacity ?? 300;
    this.intervalMs = options.intervalMs ?? 1000;
    this.#last = this.#read(Date.now());
  }

  #read(time: number): { time: number; calls: number; delivered: number; commitSum: number; commitCount: number } {
    const m = this.#sources.metrics;
    return { time, calls: m.signalsTotal, delivered: m.fanout.sum, commitSum: m.commitSeconds.sum, commitCount: m.commitSeconds.count };
  }

  /** Starts sampling (the timer never keeps the process alive). */
  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => this.sample(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Takes one sample now (the timer calls it; tests may too). */
  sample(now = Date.now()): AdminSample {
    const cur = this.#read(now);
    const prev = this.#last;
    this.#last = cur;
    const seconds = Math.max((cur.time - prev.time) / 1000, 0.001);
    const commits = cur.commitCount - prev.commitCount;
    const memory = process.memoryUsage();
    const sample: AdminSample = {
      seq: ++this.#seq,
      time: now,
      callsPerSecond: round((cur.calls - prev.calls) / seconds),
      deliveredPerSecond: round((cur.delivered - prev.delivered) / seconds),
      commitMs: commits > 0 ? round(((cur.commitSum - prev.commitSum) / commits) * 1000) : null,
      rssMiB: round(memory.rss / MIB),
      heapMiB: round(memory.heapUsed / MIB),
      storeMiB: round(this.#sources.storeBytes() / MIB),
      connections: this.#sources.connections(),
    };
    if (this.#ring.length === this.#capacity) this.#ring.shift();
    this.#ring.push(sample);
    return sample;
  }

  /** The samples after `seq` (all kept ones for 0), oldest first. */
  since(seq: number): AdminSample[] {
    return this.#ring.filter((s) => s.seq > seq);
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
