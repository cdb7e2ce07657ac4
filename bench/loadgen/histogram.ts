/**
 * @module bench/loadgen/histogram
 * A log-linear latency histogram in the spirit of HdrHistogram: integer microseconds, 64 linear
 * sub-buckets per power of two (relative error under 1/64, about 1.6%), constant-time record with
 * Math.clz32, mergeable across processes through a sparse JSON form.
 */

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS; // 64
const MAX_EXP = 31; // values clamp at 2^31 - 1 us (about 35 minutes)
const SIZE = SUB + (MAX_EXP - SUB_BITS) * SUB;
const MAX_VALUE = 0x7fffffff;

/** Sparse, JSON-safe form: [bucket index, count] pairs. */
export type HistogramJSON = [number, number][];

export class Histogram {
  readonly counts = new Float64Array(SIZE);
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  /** Record one value in microseconds (negative values count as 0). */
  record(us: number): void {
    const v = us < 0 ? 0 : us > MAX_VALUE ? MAX_VALUE : us | 0;
    this.counts[indexOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** Record `n` occurrences of one value. */
  recordN(us: number, n: number): void {
    const v = us < 0 ? 0 : us > MAX_VALUE ? MAX_VALUE : us | 0;
    this.counts[indexOf(v)]! += n;
    this.count += n;
    this.sum += v * n;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.min = Infinity;
    this.max = 0;
    this.sum = 0;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < SIZE; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** Value (us) at quantile q in [0, 1]: the midpoint of the bucket holding it, clamped to [min, max]. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, midpointOf(i)));
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  toJSON(): { buckets: HistogramJSON; count: number; min: number; max: number; sum: number } {
    const buckets: HistogramJSON = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!]);
    return { buckets, count: this.count, min: this.count === 0 ? 0 : this.min, max: this.max, sum: this.sum };
  }

  static fromJSON(json: ReturnType<Histogram['toJSON']>): Histogram {
    const h = new Histogram();
    for (const [i, c] of json.buckets) h.counts[i] = c;
    h.count = json.count;
    h.min = json.count === 0 ? Infinity : json.min;
    h.max = json.max;
    h.sum = json.sum;
    return h;
  }

  /** Summary in milliseconds, rounded to microseconds. */
  summaryMs(): { p50: number; p90: number; p99: number; p999: number; max: number; mean: number; samples: number } {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.max),
      mean: ms(this.mean()),
      samples: this.count,
    };
  }
}

function indexOf(v: number): number {
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v); // floor(log2 v) >= SUB_BITS
  const shift = e - SUB_BITS;
  return SUB + shift * SUB + ((v >>> shift) - SUB);
}

function midpointOf(i: number): number {
  if (i < SUB) return i;
  const shift = Math.floor((i - SUB) / SUB);
  const m = ((i - SUB) % SUB) + SUB;
  const low = m * 2 ** shift;
  return low + (2 ** shift - 1) / 2;
}
