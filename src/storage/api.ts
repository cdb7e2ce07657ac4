/**
 * @module storage/api
 * The contract between the storage engine and everything that uses it (signals, tasks, headers,
 * the CSV persister, the server). The engine implements it in `store.ts` / `transaction-db.ts`.
 *
 * Tables are named by their Model class or by table name. Inside a transaction every call is
 * synchronous (the tables are local shared memory).
 */
import type { JsonRows } from './json-rows.js';
import type { ModelClass, Row, CreateInput, Schema } from './schema.js';

/** A plain record: field values plus `pk`; `toDict()`/`_to_dict()` give a JSON-ready copy. */
export type RecordOf<T> = T & {
  /** A plain JSON-serializable object of the record's fields and pk (the seed's `_to_dict()`). */
  toDict(): T;
  _to_dict(): T;
};

/** Untyped record (tables named by string). */
export type AnyRecord = RecordOf<{ pk: string } & Record<string, unknown>>;

/**
 * Filters, as the original: `field: value` is equality; `field__op: value` with op one of
 * `eq ne gt lt ge le in nin f (substring) re (regex) max min`; `ref__field[__op]: value` filters
 * through the referenced table; `_sort: 'field' | '-field'` and `_limit: n` (applied after the
 * filters, unlike the original). A function filter `(row) => boolean` may be given as `_where`.
 */
export type Filters = Record<string, unknown> & {
  _sort?: string | string[];
  _limit?: number;
  _where?: (row: Record<string, unknown>) => boolean;
};

type TableRef<M> = M | string;
type RowFor<M> = M extends ModelClass ? Row<M> : { pk: string } & Record<string, unknown>;
type InputFor<M> = M extends ModelClass ? CreateInput<M> : Record<string, unknown>;

/** Rows to act on: a record, a pk, an array of either, or filters. */
export type Target = string | { pk: string } | ReadonlyArray<string | { pk: string }> | Filters;

/** The database handle passed to signals, tasks and headers as `db`. */
export interface Db {
  /** Creates a row and returns the record. Missing fields get their defaults; pk may be given. */
  create<M extends ModelClass | string>(table: TableRef<M>, values?: InputFor<M>): RecordOf<RowFor<M>>;
  /** Exactly one row by pk or by filters; null when none; MULTIPLE error when several match. */
  get<M extends ModelClass | string>(table: TableRef<M>, pkOrFilters: string | Filters): RecordOf<RowFor<M>> | null;
  /** Rows matching the filters (all rows when omitted). */
  query<M extends ModelClass | string>(table: TableRef<M>, filters?: Filters): RecordOf<RowFor<M>>[];
  /**
   * The rows {@link query} would return, as JSON text written straight from the columns (no record
   * objects): for rows that only go to a reply. Put the result anywhere in `ws.send`,
   * `sv.publish` or `this.response` payloads and its text is spliced in as is; the JSON is the same
   * as sending the records' `toDict()`. `reverse()`, `slice()`, `length`, `toArray()`.
   */
  queryJson<M extends ModelClass | string>(table: TableRef<M>, filters?: Filters): JsonRows;
  /** Alias of {@link query}. */
  filter<M extends ModelClass | string>(table: TableRef<M>, filters?: Filters): RecordOf<RowFor<M>>[];
  /** Updates the target rows with the given field values; returns the updated records. */
  update<M extends ModelClass | string>(table: TableRef<M>, target: Target, values: InputFor<M>): RecordOf<RowFor<M>>[];
  /**
   * Deletes the target rows; returns how many were deleted. `cascade` lists reference fields of
   * other tables (`'ChatMessage.author'`) whose rows pointing at a deleted row are deleted too,
   * recursively.
   */
  drop<M extends ModelClass | string>(table: TableRef<M>, target: Target, options?: { cascade?: string[] }): number;
  /** Alias of {@link drop}. */
  delete<M extends ModelClass | string>(table: TableRef<M>, target: Target, options?: { cascade?: string[] }): number;
  count<M extends ModelClass | string>(table: TableRef<M>, filters?: Filters): number;
  /** Returns `[record, created]`: the one row matching `filters`, or a new one from filters + defaults. */
  getOrCreate<M extends ModelClass | string>(table: TableRef<M>, filters: Filters, defaults?: InputFor<M>): [RecordOf<RowFor<M>>, boolean];
  /** A copy of the record with reference fields replaced by the referenced records (depth levels). */
  hydrate(table: ModelClass | string, record: { pk: string }, depth?: number): Record<string, unknown>;
  /** The compiled schema. */
  readonly schema: Schema;
}

/** Outcome of a commit attempt. */
export type CommitResult =
  | {
      ok: true;
      commitId: number;
      changes: ChangeSet;
      /** The transaction's publications (history channels only), in publish order, with the offsets the commit assigned. */
      publications: Publication[];
    }
  | {
      ok: false;
      reason: 'conflict' | 'unique';
      message: string;
      /**
       * `commit({ rebase: true })` only: the transaction is still open, rebased. Its steps before
       * `step` are kept (valid at its new snapshot), the later ones rolled back: re-run them, then
       * commit again (Txn.step).
       */
      step?: number;
    };

// -- channel history (history.ts) ------------------------------------------------------------------

/** How much history a channel keeps: the last `size` publications and/or those younger than `maxAgeSeconds`. */
export interface HistoryPolicy {
  size?: number;
  maxAgeSeconds?: number;
}

/**
 * The history policy of a channel, or null/undefined when it keeps no history (publishing to it
 * records nothing). Set per thread on the store (`store.historyPolicy`).
 */
export type HistoryPolicyResolver = (channel: string) => HistoryPolicy | null | undefined;

/** A publication as its commit recorded it. `time`: ms since the Unix epoch, taken at commit. */
export interface Publication {
  channel: string;
  offset: number;
  epoch: string;
  time: number;
}

/**
 * Where a channel's history stands: `offset` is the last offset assigned (the top), `oldest` the
 * lowest retained one (`offset + 1` when nothing is retained); `epoch` changes only when the
 * history is lost (resetHistory, a repair at load).
 */
export interface ChannelPosition {
  epoch: string;
  offset: number;
  oldest: number;
}

export interface HistoryItem {
  offset: number;
  time: number;
  /** The published text, exactly as given to publish(). */
  text: string;
}

/** A channel's position and the items read, in offset order. */
export interface HistoryPage extends ChannelPosition {
  items: HistoryItem[];
}

/** Items with offset > `after` (default 0: everything retained), at most `limit` (default: all). */
export interface HistoryQuery {
  after?: number;
  limit?: number;
}

/**
 * What a committed transaction changed, in a form a write-ahead log can append as one record:
 * per table, the full new values of inserted/updated rows and the pks of deleted rows.
 */
export interface ChangeSet {
  commitId: number;
  tables: { [table: string]: { upserts: Array<Record<string, unknown>>; deletes: string[] } };
  /**
   * Set by the commit (not logged): the ids of the tables it wrote and the key stamp buckets it
   * stamped (read-set.ts), what live queries match their read sets against (docs/live-queries.md).
   */
  written?: WrittenRows;
}

/** Tables and key stamp buckets: what a commit wrote (pk and indexed fields, old and new values), or what a transaction read. */
export interface WrittenKeys {
  tables: number[];
  keys: number[];
}

/** What a commit wrote: {@link WrittenKeys}, and the pks of the rows it wrote per table (`pks[i]` of `tables[i]`). */
export interface WrittenRows extends WrittenKeys {
  pks: string[][];
}

/** A transaction. `db` is valid until commit/abort. */
export interface Txn {
  readonly db: Db;
  /** Snapshot (commit id) the transaction reads at. */
  readonly snapshot: number;
  /** Marks the current write buffer; {@link rollbackTo} drops writes made after it. */
  savepoint(): number;
  rollbackTo(savepoint: number): void;
  /** Validates (serializability, unique constraints) and publishes the writes atomically. */
  /**
   * Marks the start of the next step of the transaction (a worker marks one per unit of a job);
   * returns its index, from 0. Reads and writes are attributed to the step running when made.
   */
  step(): number;
  /** Commits; `rebase`: see {@link CommitResult} `step` (a conflict may leave it open and rebased). */
  commit(options?: { rebase?: boolean }): CommitResult;
  abort(): void;
  /**
   * Records a publication of `text` on `channel` (runtime use; not on `db`). Its offset is
   * assigned at commit, in commit order, +1 per channel (see `CommitResult.publications`);
   * publishing never makes the transaction conflict. A savepoint rollback drops it. Returns false,
   * recording nothing, when the store's `historyPolicy` gives the channel no policy. Throws OPTION
   * on a store without history tables.
   */
  publish(channel: string, text: string): boolean;
  /**
   * At commit: deletes the channel's retained history and gives it a new epoch; offsets go on
   * after the old top (no-op for a channel without history). In call order with publish().
   */
  resetHistory(channel: string): void;
  /** The channel's history at this transaction's snapshot (committed rows only; no read-set entry). */
  history(channel: string, query?: HistoryQuery): HistoryPage | null;
  /** The channel's position at this transaction's snapshot, or null (never published). */
  channelPosition(channel: string): ChannelPosition | null;
}

/** Options for {@link SharedStore.run}. */
export interface RunOptions {
  /** Optimistic attempts before falling back to running under the exclusive lock. Default 3. */
  optimisticAttempts?: number;
}

export interface StoreStats {
  commitId: number;
  tables: { [table: string]: { rows: number; versions: number; bytes: number } };
}
