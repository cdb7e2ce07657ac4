/**
 * @module storage/indexes
 * Per-thread hash indexes derived from the shared, append-only version slots.
 *
 * Nothing here is shared, and nothing here holds a copy of a value: each index is a chained hash
 * table made of two thread-local Int32Arrays, `heads` (bucket -> newest slot in it) and `chain`
 * (slot -> next older slot in the same bucket), about 12 bytes per version per index. A bucket
 * lists the versions whose value hashes there, newest first; lookups re-read each candidate's value
 * from the shared columns to compare it, then check visibility at the transaction's snapshot.
 *
 * - The pk index (every version, tombstones included) finds the version of a pk visible at any
 *   snapshot: the first version of that pk in its bucket with begin <= S decides (it is the live
 *   one, or a tombstone / superseded one, meaning "absent at S").
 * - One index per indexed/unique field (non-null values only).
 *
 * Indexes catch up incrementally by scanning slots [seen, rowCount) when a transaction first
 * touches the table (and at commit, under the lock). Entries invisible to every open transaction of
 * this thread (superseded, or tombstones, at or before the "horizon" snapshot) are unlinked when a
 * lookup walks a long bucket, so hot rows updated thousands of times keep short buckets.
 * A dead-writer repair bumps the repair epoch, a reclamation the table's compaction epoch
 * (reclaim.ts); a thread that sees a new epoch (or a row count below what it has seen) rebuilds
 * from scratch, because slots past the repaired row count will be reused by other rows, and
 * compacted slots hold other versions.
 *
 * Hashes are seeded per store (`StoreHandles.hashSeed`, random at creation, shared by every
 * thread of the process, never persisted): keys a client chooses cannot be computed offline to
 * pile into one bucket and turn lookups into scans.
 */
import { randomBytes } from 'node:crypto';
import { Utf8Values } from './column-values.js';
import { DASH_BEFORE, HEX_ASCII, UTF8_MARK, UUID_BYTES, UuidValues } from './uuid-values.js';
import type { SharedTable } from './table.js';

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/**
 * A fresh hash seed: random per store (per process), never persisted, so that keys chosen by
 * clients (emails, names) cannot be crafted offline to fall into one bucket.
 */
export function randomHashSeed(): number {
  return randomBytes(4).readUInt32LE(0);
}

/**
 * The end of every hash: murmur3's fmix32. The bucket is the hash's low bits, and FNV-1a's low
 * bits depend only on the input's low bits, so without this mix keys differing only in high bits
 * would share a bucket under every seed.
 */
function finish(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The FNV-1a start for `seed` (the offset basis mixed with the seed). */
function basis(seed: number): number {
  return (0x811c9dc5 ^ seed) | 0;
}

/** Seeded FNV-1a over UTF-16 code units for strings; bit mixing for numbers and booleans. */
export function hashValue(value: unknown, seed: number): number {
  if (typeof value === 'string') {
    let h = basis(seed);
    for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
    return finish(h);
  }
  if (typeof value === 'number') {
    f64[0] = value === 0 ? 0 : value; // -0 and 0 are equal
    return finish(Math.imul(u32[0]! ^ seed, 0x9e3779b9) ^ u32[1]!);
  }
  return finish(value === true ? seed ^ 1 : seed ^ 2);
}

/**
 * {@link hashValue} of the string at slot v of a Utf8 store (a pk or a string column), from its
 * UTF-8 bytes [start, end) when they are ASCII (the same FNV-1a as over the string's code units),
 * else from the decoded string.
 */
function hashUtf8At(values: Utf8Values | UuidValues, bytes: Uint8Array, start: number, end: number, v: number, seed: number): number {
  let h = basis(seed);
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b >= 0x80) return hashValue(values.read(v), seed);
    h = Math.imul(h ^ b, 0x01000193);
  }
  return finish(h);
}

/**
 * {@link hashValue} of the string at slot v of a pk or ref column, from its stored bytes: a packed
 * UUID is hashed over the characters of its canonical form, computed from its bytes (no string).
 */
function hashUuidAt(values: UuidValues, v: number, seed: number): number {
  const off = values.offsets.i32(v + 1);
  const start = off[v]!;
  let end = off[v + 1]!;
  const bytes = values.data.bytes(end);
  if (end - start !== UUID_BYTES) {
    if (end > start && bytes[end - 1] === UTF8_MARK) end--;
    return hashUtf8At(values, bytes, start, end, v, seed);
  }
  let h = basis(seed);
  for (let k = 0; k < UUID_BYTES; k++) {
    if (DASH_BEFORE[k] === 1) h = Math.imul(h ^ 45, 0x01000193);
    const b = bytes[start + k]! << 1;
    h = Math.imul(h ^ HEX_ASCII[b]!, 0x01000193);
    h = Math.imul(h ^ HEX_ASCII[b + 1]!, 0x01000193);
  }
  return finish(h);
}

/** A chained hash table of slots in Int32Arrays. */
class ChainTable {
  heads = new Int32Array(64).fill(-1);
  chain = new Int32Array(1024);
  entries = 0;

  insert(slot: number, hash: number): void {
    if (this.chain.length <= slot) {
      const grown = new Int32Array(Math.max(slot + 1, this.chain.length * 2));
      grown.set(this.chain);
      this.chain = grown;
    }
    const b = hash & (this.heads.length - 1);
    this.chain[slot] = this.heads[b]!;
    this.heads[b] = slot;
    this.entries++;
  }

  /**
   * Makes room for `more` entries before they are inserted: the chain array covers slot `lastSlot`
   * and the bucket array is sized once for the final count (a bulk build of a million rows
   * allocates once and never rehashes).
   */
  reserve(more: number, lastSlot: number, hashOf: (slot: number) => number): void {
    if (this.chain.length <= lastSlot) {
      const grown = new Int32Array(Math.max(lastSlot + 1, this.chain.length * 2));
      grown.set(this.chain);
      this.chain = grown;
    }
    const target = this.entries + more;
    if (target <= this.heads.length) return;
    if (this.entries === 0) {
      let size = this.heads.length;
      while (size < target * 2) size *= 2;
      this.heads = new Int32Array(size).fill(-1);
      return;
    }
    this.maybeGrow(hashOf, target);
  }

  /** Doubles the bucket array when entries outnumber buckets; `hashOf` re-derives each slot's hash. */
  maybeGrow(hashOf: (slot: number) => number, expected = this.entries): void {
    if (expected <= this.heads.length) return;
    const slots: number[] = [];
    for (let b = 0; b < this.heads.length; b++) for (let v = this.heads[b]!; v !== -1; v = this.chain[v]!) slots.push(v);
    slots.sort((x, y) => x - y); // re-insert oldest first so buckets stay newest-first
    let size = this.heads.length;
    while (size < Math.max(slots.length, expected) * 2) size *= 2;
    this.heads = new Int32Array(size).fill(-1);
    this.entries = 0;
    for (const v of slots) this.insert(v, hashOf(v));
  }

  longestBucket(): number {
    let longest = 0;
    for (let b = 0; b < this.heads.length; b++) {
      let n = 0;
      for (let v = this.heads[b]!; v !== -1; v = this.chain[v]!) n++;
      if (n > longest) longest = n;
    }
    return longest;
  }

  /** Unlinks the slots of bucket `hash` for which `dead(slot)` holds. */
  prune(hash: number, dead: (slot: number) => boolean): void {
    const b = hash & (this.heads.length - 1);
    let prev = -1;
    for (let v = this.heads[b]!; v !== -1; ) {
      const next = this.chain[v]!;
      if (dead(v)) {
        if (prev === -1) this.heads[b] = next;
        else this.chain[prev] = next;
        this.entries--;
      } else prev = v;
      v = next;
    }
  }
}

/** Walks longer than this trigger a prune of the bucket. */
const PRUNE_WALK = 16;

export class TableIndex {
  readonly table: SharedTable;
  /** Returns the smallest snapshot any open transaction of this thread may still read at. */
  readonly #horizon: () => number;
  /** The store's hash seed (the same in every thread of the process: see store-handles.ts). */
  readonly #seed: number;
  #seen = 0;
  #epoch = -1;
  #tableEpoch = -1;
  #pk = new ChainTable();
  #fields = new Map<number, ChainTable>();

  constructor(table: SharedTable, horizon: () => number, seed: number) {
    this.table = table;
    this.#horizon = horizon;
    this.#seed = seed >>> 0;
    this.#reset();
  }

  #reset(): void {
    this.#seen = 0;
    this.#pk = new ChainTable();
    this.#fields = new Map();
    this.table.schema.fields.forEach((f, k) => {
      if (f.indexed) this.#fields.set(k, new ChainTable());
    });
  }

  /** Catches up with the published slots. Call after reading the snapshot's commit id. */
  sync(): void {
    const t = this.table;
    const epoch = t.control.repairEpoch();
    const tableEpoch = t.control.tableEpoch(t.id);
    const rows = t.rowCount();
    if (epoch !== this.#epoch || tableEpoch !== this.#tableEpoch || rows < this.#seen) {
      this.#reset();
      this.#epoch = epoch;
      this.#tableEpoch = tableEpoch;
    }
    if (rows === this.#seen) return;
    const seed = this.#seed;
    const more = rows - this.#seen;
    this.#pk.reserve(more, rows - 1, (v) => hashValue(t.readPk(v), seed));
    for (const [k, index] of this.#fields) index.reserve(more, rows - 1, (v) => hashValue(t.columns[k]!.read(v), seed));
    // pks are hashed straight from their stored bytes (the same FNV-1a as over the string's code
    // units): no string per version while catching up over a million rows.
    const fields = [...this.#fields];
    for (let v = this.#seen; v < rows; v++) {
      this.#pk.insert(v, hashUuidAt(t.pk, v, seed));
      if (fields.length === 0 || t.isTombstone(v)) continue;
      for (const [k, index] of fields) {
        const column = t.columns[k]!;
        if (!column.validity.get(v)) continue;
        const values = column.values;
        if (values instanceof Utf8Values) {
          const off = values.offsets.i32(v + 1);
          index.insert(v, hashUtf8At(values, values.data.bytes(off[v + 1]!), off[v]!, off[v + 1]!, v, seed));
        } else if (values instanceof UuidValues) index.insert(v, hashUuidAt(values, v, seed));
        else index.insert(v, hashValue(values.read(v), seed));
      }
    }
    this.#seen = rows;
    this.#pk.maybeGrow((v) => hashValue(t.readPk(v), seed));
    for (const [k, index] of this.#fields) index.maybeGrow((v) => hashValue(t.columns[k]!.read(v), seed));
  }

  /** Invisible to every open transaction of this thread: superseded or deleted at/before the horizon. */
  #deadAt(horizon: number): (v: number) => boolean {
    const t = this.table;
    return (v) => {
      const n = t.nextOf(v);
      if (n !== -1) return t.beginOf(n) <= horizon;
      return t.isTombstone(v) && t.beginOf(v) <= horizon;
    };
  }

  /** Slot of the version of `pk` visible at snapshot s, or -1 (absent or deleted). */
  lookupPk(pk: string, s: number): number {
    const t = this.table;
    const table = this.#pk;
    const hash = hashValue(pk, this.#seed);
    let walked = 0;
    let found = -1;
    for (let v = table.heads[hash & (table.heads.length - 1)]!; v !== -1; v = table.chain[v]!) {
      walked++;
      if (t.beginOf(v) > s || !t.pk.equals(v, pk)) continue;
      // The newest version of pk with begin <= s decides: live, or absent at s.
      found = t.isVisible(v, s) ? v : -1;
      break;
    }
    if (walked > PRUNE_WALK) table.prune(hash, this.#deadAt(this.#horizon()));
    return found;
  }

  /** The longest bucket of the pk index (field < 0) or of field k's index: how even the hashing is. */
  longestBucket(field = -1): number {
    const table = field < 0 ? this.#pk : this.#fields.get(field);
    return table === undefined ? 0 : table.longestBucket();
  }

  /** Whether field k has a hash index. */
  hasIndex(k: number): boolean {
    return this.#fields.has(k);
  }

  /** Version slots visible at s whose field k equals value (field k must be indexed), ascending. */
  lookupField(k: number, value: unknown, s: number): number[] {
    const table = this.#fields.get(k);
    if (table === undefined || value === null) return [];
    const t = this.table;
    const column = t.columns[k]!;
    const hash = hashValue(value, this.#seed);
    const out: number[] = [];
    let walked = 0;
    let dead = 0;
    for (let v = table.heads[hash & (table.heads.length - 1)]!; v !== -1; v = table.chain[v]!) {
      walked++;
      if (!t.isVisible(v, s)) {
        dead++;
        continue;
      }
      if (column.read(v) === value) out.push(v);
    }
    if (walked > PRUNE_WALK && dead * 4 > walked) table.prune(hash, this.#deadAt(this.#horizon()));
    return out.reverse();
  }
}
