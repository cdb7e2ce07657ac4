/**
 * @module storage/cluster-record
 * Cluster mode's side of the database (docs/cluster.md): a transaction's commit as a *commit
 * record* for the one commit stream every node reads, and the {@link ClusterApplier} that decides
 * and applies each record, in stream order, the same way on every node.
 *
 * WHY EVERY NODE DECIDES THE SAME
 *
 * A record carries what the transaction read (exact keys and scanned tables, read-set.ts
 * `exactKey`: no per-process hash seed), what it wrote (full rows, and whether each row existed
 * at its snapshot), its history operations, and `at`: the stream sequence number of the last
 * record decided at its snapshot (read from the `lexicons_cluster` row, which every record moves:
 * a committed one in its own commit, a refused one in a commit of that row alone). The applier rejects a record when a record between `at` and itself wrote a key it
 * read, a table it scanned, or a row it replaced (`conflict`), or when a row it creates exists
 * (`unique`), or a unique value clashes at the latest state (commit-protocol.ts validateCommit).
 * Every input of that decision is either in the stream (the stamps: the write keys of the
 * committed records of the last {@link CONFLICT_WINDOW}; a restarted node rebuilds them from the
 * stream and the `r<g>` rows its refusals left in the window) or in the state every node reached
 * by applying the same records in the same order. History offsets, epochs (seeded by the record's sequence number)
 * and times (the origin's clock, in the record) are derived the same way.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { CommitResult } from './api.js';
import type { Row } from './query.js';
import { exactKey, type ReadSet } from './read-set.js';
import { compileModels, field, Model, type Schema, type TableSchema } from './schema.js';
import type { SharedStore } from './store.js';
import type { Engine } from './engine.js';
import type { Transaction } from './transaction.js';
import type { TablePlan } from './write-set.js';
import type { HistoryOp } from './history.js';

/** The system table of cluster mode: one row, `applied`, the stream sequence number of the last record decided (committed or refused). */
export const CLUSTER_TABLE = 'lexicons_cluster';
const APPLIED = 'applied';

/**
 * A record whose snapshot is more than this many records behind is rejected as a conflict (it
 * re-runs at a fresh snapshot): the stamps, and what a restarted node re-reads, stay bounded.
 * The default of the cluster's `window` setting (main/cluster-registry.ts: the same on every node).
 */
export const CONFLICT_WINDOW = 50_000;

class LexiconsCluster extends Model {
  static override table = CLUSTER_TABLE;
  static seq = field.int();
}

let compiled: readonly TableSchema[] | undefined;

/** `schema` with the cluster table appended (every thread of a cluster node opens the data with it). */
export function withCluster(schema: Schema): Schema {
  if (schema.byName.has(CLUSTER_TABLE)) return schema;
  compiled ??= compileModels([LexiconsCluster], true).tables;
  const tables = [...schema.tables, ...compiled];
  return { tables, byName: new Map(tables.map((t) => [t.name, t])) };
}

/** A history operation in a record: publish (channel, text) or reset (channel). */
export type RecordOp = readonly ['p', string, string] | readonly ['r', string];

/** One transaction's commit, as it travels in the commit stream (JSON). */
export interface CommitRecord {
  /** Stream sequence number of the last record decided at the transaction's snapshot. */
  readonly at: number;
  /** The origin's clock (ms) at commit: the time of its history rows on every node. */
  readonly time: number;
  /** Tables read as a whole. */
  readonly scans: readonly number[];
  /** Exact keys read (read-set.ts exactKey). */
  readonly reads: readonly string[];
  /** [table id, pk, full new row or null (delete), whether the row existed at the snapshot]. */
  readonly writes: ReadonlyArray<readonly [number, string, Row | null, boolean]>;
  /** The keys the writes touch: each row's pk and the old and new value of each indexed field. */
  readonly keys: readonly string[];
  readonly ops: readonly RecordOp[];
}

/** The stream sequence number of the last record decided at snapshot `s`, 0 before any. */
function appliedAt(engine: Engine, s: number): number {
  const id = engine.tableIds.get(CLUSTER_TABLE);
  if (id === undefined) throw new LexiconsError(ErrorCode.TXN, 'cluster mode: the store has no cluster table (open it with withCluster(schema))');
  const index = engine.index(id);
  index.sync();
  const v = index.lookupPk(APPLIED, s);
  return v < 0 ? 0 : (engine.tables[id]!.byName.get('seq')!.read(v) as number);
}

/** The commit record of a transaction (Transaction.exportCommit). */
export function recordOf(engine: Engine, plan: readonly TablePlan[], ops: readonly HistoryOp[], reads: ReadSet, snapshot: number): CommitRecord {
  const writes: Array<[number, string, Row | null, boolean]> = [];
  const keys: string[] = [];
  for (const { id, entries } of plan) {
    const t = engine.tables[id]!;
    for (const [pk, p] of entries) {
      writes.push([id, pk, p.row, p.base >= 0]);
      keys.push(exactKey(id, -1, pk));
      t.schema.fields.forEach((f, k) => {
        if (!f.indexed) return;
        const old = p.base >= 0 ? t.columns[k]!.read(p.base) : null;
        if (old !== null && old !== undefined) keys.push(exactKey(id, k, old));
        const now = p.row === null ? null : p.row[f.name];
        if (now !== null && now !== undefined) keys.push(exactKey(id, k, now));
      });
    }
  }
  const exact: string[] = [];
  for (const set of reads.exact?.values() ?? []) exact.push(...set);
  return {
    at: appliedAt(engine, snapshot),
    time: Date.now(),
    scans: [...reads.tables.keys()],
    reads: exact,
    writes,
    keys,
    ops: ops.map((op): RecordOp => (op.kind === 'publish' ? ['p', op.channel, op.text] : ['r', op.channel])),
  };
}

/** Refusal rows out of the window one refusal deletes at most (bounded work under the lock). */
const PRUNE_PER_REFUSAL = 8;

/**
 * Decides and applies the records of the commit stream in order, on the main thread of a node
 * (module comment). `seq` is the last record decided; it starts at the last one decided before
 * the node stopped (its `lexicons_cluster` row, recovered from the data folder).
 */
export class ClusterApplier {
  readonly #store: SharedStore;
  readonly #clusterId: number;
  /** Exact key (or a table id, for scans) -> the newest committed record in the window that wrote it. */
  readonly #stamps = new Map<string, number>();
  /** Refused records in the window, in order (their `r<g>` rows in `lexicons_cluster`). */
  readonly #refused: number[] = [];
  readonly #refusedAtStart: Set<number>;
  /** The conflict window (the cluster's setting, the same on every node). */
  readonly #window: number;
  seq: number;

  constructor(store: SharedStore, window = CONFLICT_WINDOW) {
    this.#store = store;
    this.#window = window;
    const id = store.schema.tables.findIndex((t) => t.name === CLUSTER_TABLE);
    if (id < 0) throw new LexiconsError(ErrorCode.TXN, 'cluster mode: the store has no cluster table (open it with withCluster(schema))');
    this.#clusterId = id;
    let seq = 0;
    for (const row of store.scan(CLUSTER_TABLE)) {
      if (row.pk === APPLIED) seq = row.seq as number;
      else this.#refused.push(row.seq as number);
    }
    this.#refused.sort((a, b) => a - b);
    this.#refusedAtStart = new Set(this.#refused);
    this.seq = seq;
  }

  /**
   * Record `g` (at or below `seq`, decided before a restart), rebuilding the window: its stamps
   * if it was committed (refused ones have their `r<g>` row).
   */
  remember(g: number, record: CommitRecord): void {
    if (!this.#refusedAtStart.has(g)) this.#stamp(g, record);
  }

  /**
   * Decides record `g` (the next in the stream) and applies it if it commits. A throw (this
   * node's log refused the append: not a decision every node makes) leaves `seq` before `g`, so
   * that the record is applied again.
   */
  apply(g: number, record: CommitRecord): CommitResult {
    const conflict = this.#conflict(g, record);
    const result: CommitResult = conflict !== undefined ? this.#refuse(g, { ok: false, reason: 'conflict', message: conflict }) : this.#commit(g, record);
    if (result.ok) this.#stamp(g, record);
    this.seq = g;
    if (g % 10_000 === 0) this.#prune(g);
    return result;
  }

  #commit(g: number, record: CommitRecord): CommitResult {
    const store = this.#store;
    const txn = store.begin({ exclusive: true }) as Transaction;
    let result: CommitResult;
    try {
      for (const [id, pk, row, existed] of record.writes) {
        if (!existed && txn.currentRow(id, pk) !== null) {
          txn.abort();
          return this.#refuse(g, { ok: false, reason: 'unique', message: `${store.schema.tables[id]!.name}: a row with pk ${pk} already exists` });
        }
        txn.put(id, pk, row);
      }
      txn.put(this.#clusterId, APPLIED, { pk: APPLIED, seq: g });
      txn.historyClock = { now: record.time, epochSeed: String(g) };
      for (const op of record.ops) {
        if (op[0] === 'p') txn.publish(op[1], op[2]);
        else txn.resetHistory(op[1]);
      }
      result = txn.commit();
    } finally {
      txn.abort();
    }
    return result.ok ? result : this.#refuse(g, result);
  }

  /**
   * A refused record moves the `applied` row too, and leaves a row `r<g>` while it is in the
   * window: a node that restarts rebuilds the stamps from the stream, and must know which records
   * of the window wrote nothing. (Stamping refused records instead would make every retry of a
   * hot row refuse the next one: nodes retrying one row would refuse each other forever.)
   */
  #refuse(g: number, refusal: CommitResult): CommitResult {
    const txn = this.#store.begin({ exclusive: true }) as Transaction;
    const refused = this.#refused;
    let pruned = 0;
    try {
      txn.put(this.#clusterId, APPLIED, { pk: APPLIED, seq: g });
      txn.put(this.#clusterId, `r${g}`, { pk: `r${g}`, seq: g });
      while (pruned < PRUNE_PER_REFUSAL && pruned < refused.length && refused[pruned]! < g - 1 - this.#window) txn.put(this.#clusterId, `r${refused[pruned++]!}`, null);
      const result = txn.commit();
      if (!result.ok) throw new LexiconsError(ErrorCode.TXN, `cluster: recording refused record ${g}: ${result.message}`);
    } finally {
      txn.abort();
    }
    refused.splice(0, pruned);
    refused.push(g);
    return refusal;
  }

  #conflict(g: number, r: CommitRecord): string | undefined {
    const { at } = r;
    if (at < g - 1 - this.#window) return `snapshot at record ${at} is more than ${this.#window} records behind record ${g}`;
    const changed = (key: string): boolean => (this.#stamps.get(key) ?? 0) > at;
    const name = (id: number): string => this.#store.schema.tables[id]?.name ?? `table ${id}`;
    for (const id of r.scans) if (changed(String(id))) return `${name(id)} changed since record ${at}`;
    for (const key of r.reads) if (changed(key)) return `${name(Number(key.slice(0, key.indexOf('/'))))} changed since record ${at}: a row or key it read was written`;
    for (const [id, pk, , existed] of r.writes) if (existed && changed(exactKey(id, -1, pk))) return `${name(id)} row ${pk} changed since record ${at}`;
    return undefined;
  }

  #stamp(g: number, r: CommitRecord): void {
    for (const [id] of r.writes) this.#stamps.set(String(id), g);
    for (const key of r.keys) this.#stamps.set(key, g);
  }

  /** Drops stamps older than the window: no record they could reject is accepted any more. */
  #prune(g: number): void {
    for (const [key, s] of this.#stamps) if (s < g - 1 - this.#window) this.#stamps.delete(key);
  }
}
