/**
 * @module live-query
 * Live queries (docs/live-queries.md): a class beside Signals whose `query` a client subscribes
 * to (`client.live(name, args)`); the server keeps the client's copy of its result current as
 * transactions commit. Like a Signal it has `static args` (same checks) and reads through `db`;
 * it sees the connection (`ws`), so authorization lives in the query: throwing (e.g. a
 * `SignalError`) refuses the subscription with that error's code.
 *
 * `query` returns one of three forms:
 * - `live.rows(Table, filters, { orderBy, limit })`: one table's rows matching field filters,
 *   optionally the top `limit` by `orderBy` (declarative);
 * - `live.aggregate(Table, filters, { groupBy, values: { n: live.count(), total: live.sum('x') } })`:
 *   count, sum, min, max, avg per group (declarative);
 * - anything else it computes through `db` (the general form): a list of records (row changes
 *   by pk), or any JSON value (replaced whole when it changes).
 *
 * Plain definitions: nothing here touches sockets or threads (both threads import it).
 *
 * @example
 * class NewestMessages extends LiveQuery {
 *   static override args = { channel: field.str() };
 *   query({ channel, ws }: LiveContext<typeof NewestMessages>) {
 *     if (ws.auth === null || ws.auth === undefined) throw new SignalError('FORBIDDEN', 'log in first');
 *     return live.rows(ChatMessage, { channel }, { orderBy: '-timestamp', limit: 50 });
 *   }
 * }
 */
import type { Connection, Json } from './components.js';
import type { Db } from './storage/api.js';
import { tableNameOf, type ModelClass, type Row } from './storage/schema.js';
import type { ArgFields, ArgsOf, ComponentSet } from './typing.js';
import { Manager } from './components.js';
import { optionError } from './errors.js';

/** Live queries one connection may hold at once (a subscription over it is refused with `LIVE_LIMIT`). */
export const MAX_LIVE_QUERIES_PER_CONNECTION = 64;
/** Rows (or groups) one live query's result may hold; a larger result is refused with `LIVE_LIMIT`. */
export const MAX_LIVE_ROWS = 1000;

/** An aggregate of a field (or of the rows, for `count`). */
export interface Aggregate {
  readonly op: 'count' | 'sum' | 'min' | 'max' | 'avg';
  readonly field?: string;
}

/** Field filters of a declarative form: `field: value` (equality) and `field__op: value`, as `db.query` (no `_where`, no `_sort`). */
export type LiveFilters = Record<string, Json>;

/** The declarative rows form (see {@link live.rows}); `R` is the row type the client sees. */
export interface RowsSpec<R = Record<string, unknown>> {
  readonly '~live': 'rows';
  readonly table: string;
  readonly filters: LiveFilters;
  readonly orderBy?: string | readonly string[];
  readonly limit?: number;
  /** Phantom: the row type. Never set. */
  readonly '~row'?: R;
}

/** The declarative aggregate form (see {@link live.aggregate}); `V` names its values. */
export interface AggregateSpec<V extends string = string> {
  readonly '~live': 'aggregate';
  readonly table: string;
  readonly filters: LiveFilters;
  readonly groupBy?: string;
  readonly values: Readonly<Record<V, Aggregate>>;
}

export type LiveSpec = RowsSpec<unknown> | AggregateSpec;

/** Options of {@link live.rows}. */
export interface RowsOptions {
  /** `'field'` ascending or `'-field'` descending; several for ties. */
  orderBy?: string | readonly string[];
  /** Keep only the first `limit` rows in that order (top-k: a row that falls out leaves, the next one enters). */
  limit?: number;
}

/** Options of {@link live.aggregate}. */
export interface AggregateOptions<V extends string> {
  /** One group per value of this field (its group key is the value as a string); none: one group `"*"`. */
  groupBy?: string;
  values: Record<V, Aggregate>;
}

type RowOf<M> = M extends ModelClass ? Row<M> : { pk: string } & Record<string, unknown>;

/** The declarative forms' builders. */
export const live = {
  /** Rows of `table` matching `filters`, optionally ordered and limited. */
  rows<M extends ModelClass | string>(table: M, filters: LiveFilters = {}, options: RowsOptions = {}): RowsSpec<RowOf<M>> {
    return { '~live': 'rows', table: tableNameOf(table), filters, ...options };
  },
  /** Aggregates over the rows of `table` matching `filters`, per group of `groupBy`. */
  aggregate<V extends string>(table: ModelClass | string, filters: LiveFilters, options: AggregateOptions<V>): AggregateSpec<V> {
    return { '~live': 'aggregate', table: tableNameOf(table), filters, values: options.values, ...(options.groupBy === undefined ? {} : { groupBy: options.groupBy }) };
  },
  count: (): Aggregate => ({ op: 'count' }),
  sum: (field: string): Aggregate => ({ op: 'sum', field }),
  min: (field: string): Aggregate => ({ op: 'min', field }),
  max: (field: string): Aggregate => ({ op: 'max', field }),
  avg: (field: string): Aggregate => ({ op: 'avg', field }),
} as const;

/** Whether `value` is a declarative form built by {@link live}. */
export function isLiveSpec(value: unknown): value is LiveSpec {
  return typeof value === 'object' && value !== null && ((value as { '~live'?: unknown })['~live'] === 'rows' || (value as { '~live'?: unknown })['~live'] === 'aggregate');
}

type ArgsFor<A> = 0 extends 1 & A ? A : A extends abstract new (...args: any) => any ? ArgsOf<A> : A;

/** What `query` receives: its arguments (from `static args`), `db` (read it; writes are discarded) and `ws`. */
export type LiveContext<A = Record<string, unknown>> = ArgsFor<A> & { db: Db; ws: Connection };

/**
 * A query a client keeps live. The class name (or `static liveName`) is its name on the wire.
 * `query` runs in a worker at the latest commit, first when a client subscribes, then again
 * whenever a commit wrote something it read (docs/live-queries.md "Consistency").
 */
export abstract class LiveQuery {
  static args?: ArgFields;
  static liveName?: string;
  abstract query(context: LiveContext<any>): unknown;
}

/** Name of a live query class: `static liveName`, else the class name. */
export function liveQueryName(cls: typeof LiveQuery): string {
  return cls.liveName ?? cls.name;
}

/** What the client materializes for a live query class C: rows, groups of values, or a JSON value. */
export type LiveResultOf<C> = C extends abstract new (...args: any) => { query(...args: any): infer R } ? LiveShape<Awaited<R>> : unknown;
type LiveShape<R> = R extends RowsSpec<infer Row> ? { rows: Row[] } : R extends AggregateSpec<infer V> ? { groups: Record<string, Record<V, number | null>> } : R extends ReadonlyArray<infer E> ? { rows: E[] } : { value: R };

/** The app's live queries; a record (`new LiveQueryManager({ NewestMessages })`) keeps names and types for typed clients. */
export class LiveQueryManager<const S extends ComponentSet<typeof LiveQuery> = ComponentSet<typeof LiveQuery>> extends Manager<typeof LiveQuery> {
  /** Phantom: the live queries' types (read by `createClient<typeof server>`). Never set. */
  declare readonly '~live'?: S;
  constructor(queries: S);
  constructor(...queries: S & readonly (typeof LiveQuery)[]);
  constructor(...items: unknown[]) {
    const [first] = items;
    if (items.length !== 1 || typeof first !== 'object' || first === null || Array.isArray(first)) {
      super(...(items as Array<typeof LiveQuery>));
      return;
    }
    const entries = Object.entries(first as Record<string, typeof LiveQuery>);
    for (const [key, item] of entries) {
      const name = typeof item === 'function' ? liveQueryName(item) : String(item);
      if (name !== key) throw optionError(`LiveQueryManager: key ${key} holds ${name}; a key must be the live query's name`);
    }
    super(...entries.map(([, item]) => item));
  }
}

/** The live queries by name (a class name, or `static liveName`): the `live` option checked. */
export function liveQueries(items: Iterable<typeof LiveQuery> | undefined): Map<string, typeof LiveQuery> {
  const out = new Map<string, typeof LiveQuery>();
  for (const item of items ?? []) {
    if (typeof item !== 'function' || !(item.prototype instanceof LiveQuery) || typeof item.prototype.query !== 'function') {
      throw optionError(`live: ${String((item as { name?: string })?.name ?? item)} is not a LiveQuery class with a query method`);
    }
    const name = liveQueryName(item);
    if (out.has(name)) throw optionError(`live: two live queries are named ${name}`);
    out.set(name, item);
  }
  return out;
}
