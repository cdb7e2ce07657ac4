/**
 * @module storage/read-set
 * Row-level read sets: what a transaction read, recorded as keys where it read by key, and the
 * shared per-key stamps that commit-time validation checks those keys against.
 *
 * WHY KEYS AND STAMPS
 *
 * A read set per table makes any write to a table conflict with every concurrent reader of it:
 * two transfers between four different accounts serialize. A transaction now records:
 * - a *key* (table, field, value) for every read that went through a key: a pk lookup (`get`,
 *   `pk` / `pk__in` filters, update/drop targets), an equality or `in` on an indexed or unique
 *   field. The key covers every row that has, had or will have that value: a miss is recorded
 *   like a hit, so a later insert of the key conflicts (phantom protection at key granularity);
 * - the *table* for every read that scanned (filters without an index, counts and top-k over the
 *   table): any write to the table conflicts, as before.
 *
 * A committer stamps, for each row it writes (insert, update, delete), the key of its pk and of
 * each indexed field's old and new value with its commit id, in one shared array of
 * {@link STAMP_BUCKETS} stamps indexed by the key's seeded hash (table and field mixed in: one
 * array for every table, so its size does not grow with the schema). Validation then checks,
 * for each key read, `stamp > snapshot`: some commit after the snapshot wrote a row with that key
 * (or a key hashing to the same bucket: a false conflict, never a missed one, since a stamp only
 * grows). It costs one array load per key, under the lock, and nothing on the lock-free read path;
 * tables whose last-write id did not move past the snapshot are skipped whole.
 *
 * A worker job (many calls, one transaction) reads and writes hundreds of keys: two concurrent
 * jobs of 100 point transfers compare ~200 keys read against ~200 stamps written, so the array
 * is large (2^18 buckets: about 15% false conflicts for that pair, against ~100% at 8,192).
 *
 * Bounded memory: a transaction keeps at most {@link MAX_KEYS_PER_TABLE} keys per table (one small
 * integer each, the bucket); one more and that table's keys are dropped for a table-wide read.
 */
import { hashValue } from './indexes.js';
import type { WrittenKeys } from './api.js';
import type { Row } from './query.js';
import type { SharedTable } from './table.js';

/** Stamp buckets of the store (a power of two): 2 MiB of shared memory, whatever the schema. */
export const STAMP_BUCKETS = 1 << 18;

/**
 * Keys of one table a transaction records before it reads the table as a whole instead (N): at
 * most 1,024 small integers per table per open transaction. At the bound, a transaction has a
 * 0.4% chance of a false conflict per row written concurrently; reading a handful of keys, ~0.002%.
 */
export const MAX_KEYS_PER_TABLE = 1024;

/** Byte size of the stamps buffer. */
export const STAMP_BYTES = STAMP_BUCKETS * 8;

/**
 * The stamp bucket of key (table, field k, value); k = -1 is the pk. Table and field are mixed
 * in (murmur3's fmix32 of the index hash xor them): pk 'x' is not field 'x', nor table 2's 'x'.
 */
export function keyBucket(table: number, k: number, value: unknown, seed: number): number {
  let h = hashValue(value, seed) ^ Math.imul(((table + 1) << 10) + k + 2, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & (STAMP_BUCKETS - 1);
}

/**
 * The shared stamps: per bucket, the newest commit id that wrote a row with a key in that bucket
 * (0 = never).
 *
 * Why plain Float64 reads and writes and no Atomics: every access happens under the commit lock
 * (stamping in publishCommit, checking in validateCommit, clamping in a dead-writer repair), and
 * the lock's Atomics.compareExchange / Atomics.store already order each holder's accesses after the
 * previous holder's. Readers never look at stamps, so the lock-free read path is unchanged (a
 * live-query refresh reads them without the lock, conservatively: since.ts says why that is safe).
 * Float64 holds commit ids exactly up to 2^53, like `begin`.
 */
export class KeyStamps {
  readonly sab: SharedArrayBuffer;
  readonly seed: number;
  readonly #f64: Float64Array;

  constructor(sab: SharedArrayBuffer, seed: number) {
    if (sab.byteLength !== STAMP_BYTES) throw new RangeError(`stamps buffer is ${sab.byteLength} bytes, expected ${STAMP_BYTES}`);
    this.sab = sab;
    this.seed = seed >>> 0;
    this.#f64 = new Float64Array(sab);
  }

  static allocate(seed: number): KeyStamps {
    return new KeyStamps(new SharedArrayBuffer(STAMP_BYTES), seed);
  }

  /** Under the lock (or conservatively without it, since.ts): the newest commit that wrote a key in `bucket`. */
  get(bucket: number): number {
    return this.#f64[bucket]!;
  }

  #stamp(table: number, k: number, value: unknown, commitId: number, out: number[] | undefined): void {
    const bucket = keyBucket(table, k, value, this.seed);
    this.#f64[bucket] = commitId;
    out?.push(bucket);
  }

  /**
   * Under the lock, in publishCommit: stamps the keys a write of row `pk` touches with
   * `commitId` (commit ids grow, so a plain store keeps the maximum): its pk, and for each indexed
   * field the value of the version it replaces (`base`, -1 for an insert) and its new value
   * (`row`, null for a delete). Both, even when equal: readers by that value read the row's other
   * fields too. `out` collects the buckets stamped (what live queries match, ChangeSet.written).
   */
  stampWrite(t: SharedTable, pk: string, row: Row | null, base: number, commitId: number, out?: number[]): void {
    this.#stamp(t.id, -1, pk, commitId, out);
    const fields = t.schema.fields;
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k]!;
      if (!f.indexed) continue;
      if (base >= 0) {
        const old = t.columns[k]!.read(base);
        if (old !== null) this.#stamp(t.id, k, old, commitId, out);
      }
      const now = row === null ? null : row[f.name];
      if (now !== null && now !== undefined) this.#stamp(t.id, k, now, commitId, out);
    }
  }

  /**
   * Under the lock: every bucket = `commitId`, for a commit that does not stamp the keys of the
   * rows it writes (appendColumns: a million rows at start-up, where hashing each would cost more
   * than this 2 MiB fill). Every key read at an older snapshot then conflicts with it, as a scan
   * would: serializable without knowing the keys.
   */
  stampAll(commitId: number): void {
    this.#f64.fill(commitId);
  }

  /**
   * Under the lock, in a dead-writer repair: the dead commit's stamps (above the published commit
   * id `latest`) come down to `latest`. The next commit reuses the dead one's id; a stamp left at
   * it would fail every transaction at snapshot `latest` that read the key (until exclusive).
   */
  clampAbove(latest: number): void {
    const f64 = this.#f64;
    for (let i = 0; i < f64.length; i++) if (f64[i]! > latest) f64[i] = latest;
  }
}

/**
 * A key (table, field k, value) spelled out, as cluster mode validates it (storage/cluster-record.ts):
 * every node must decide a commit record the same way, so its read set travels as exact keys,
 * not as buckets of a per-process hash seed.
 */
export function exactKey(table: number, k: number, value: unknown): string {
  return `${table}/${k}/${typeof value === 'object' ? JSON.stringify(value) : `${typeof value}:${String(value)}`}`;
}

/**
 * What one transaction read: tables read as a whole, and stamp buckets of the keys read per table,
 * each with the *step* that first read it (a worker job marks one step per unit, transaction.ts
 * `step()`): when a commit conflicts, the first step whose reads were overwritten is the earliest
 * entry that fails validation, and every step before it read only what is still current.
 */
export class ReadSet {
  /** Tables read as a whole (a scan) -> first step that scanned: any write to them after the snapshot conflicts. */
  readonly tables = new Map<number, number>();
  /** Per table not read as a whole: the stamp buckets of the keys read -> first step that read them. */
  readonly keys = new Map<number, Map<number, number>>();
  /** Cluster mode only: per table not read as a whole, the {@link exactKey}s read. */
  readonly exact: Map<number, Set<string>> | undefined;
  /** The step reads are recorded for now (0 unless the transaction marks steps). */
  step = 0;
  readonly #seed: number;

  constructor(seed: number, exact = false) {
    this.#seed = seed;
    this.exact = exact ? new Map() : undefined;
  }

  /** What was read, flat: the tables scanned and the buckets of the keys read (live queries' dependencies). */
  deps(): WrittenKeys {
    const keys: number[] = [];
    for (const buckets of this.keys.values()) for (const b of buckets.keys()) keys.push(b);
    return { tables: [...this.tables.keys()], keys };
  }

  /**
   * A scan of table `id`. At {@link MAX_KEYS_PER_TABLE} keys, it stands for the keys read so far:
   * it takes the step of the first of them (entries are in step order), never a later one.
   */
  table(id: number, step = this.step): void {
    if (!this.tables.has(id)) this.tables.set(id, step);
    this.keys.delete(id);
    this.exact?.delete(id);
  }

  /** A read of key (field k, value) of table `id`; k = -1 is the pk. */
  key(id: number, k: number, value: unknown): void {
    if (this.tables.has(id)) return;
    let buckets = this.keys.get(id);
    if (buckets === undefined) this.keys.set(id, (buckets = new Map()));
    const bucket = keyBucket(id, k, value, this.#seed);
    if (buckets.get(bucket) === undefined) buckets.set(bucket, this.step);
    if (this.exact) {
      let keys = this.exact.get(id);
      if (keys === undefined) this.exact.set(id, (keys = new Set()));
      keys.add(exactKey(id, k, value));
    }
    if (buckets.size > MAX_KEYS_PER_TABLE) this.table(id, buckets.values().next().value!);
  }

  /** Forgets the reads of steps >= `step` (their calls were rolled back); reads from now on belong to `step`. */
  dropFrom(step: number): void {
    for (const [id, first] of this.tables) if (first >= step) this.tables.delete(id);
    for (const [id, buckets] of this.keys) {
      for (const [bucket, first] of buckets) if (first >= step) buckets.delete(bucket);
      if (buckets.size === 0) this.keys.delete(id);
    }
    this.step = step;
  }
}
