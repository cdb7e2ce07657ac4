/**
 * @module main/admin-data
 * What the admin page shows, as JSON, read on the main thread: tables (row counts, fields), a page
 * of rows, connections and channels.
 *
 * Rows are read through the store's lock-free read path (a transaction that is aborted, never
 * committed: no commit lock) and every read is bounded: a page holds at most {@link MAX_PAGE} rows,
 * sorted by the query top-k path (`_sort` + `_limit`: a heap of `offset + limit` entries over the
 * sort column, no row outside the page is materialized), and pages end {@link MAX_DEPTH} rows
 * deep. Secret fields are masked and cannot be the sort key. Long strings are cut.
 */
import { ErrorCode, isLexiconsError } from '../errors.js';
import type { ChannelPosition } from '../storage/api.js';
import type { Schema } from '../storage/schema.js';
import type { SharedStore } from '../storage/store.js';
import { maskRow, secretFields } from './admin-secrets.js';
import type { Hub } from './hub.js';

/** Most rows in one page. */
export const MAX_PAGE = 200;
/** Deepest row a page may reach (offset + limit): the top-k heap's bound. */
export const MAX_DEPTH = 10_000;
/** Most connections / channels listed (the counts are exact). */
export const MAX_LISTED = 200;
/** Longest string value shown, in characters. */
const MAX_TEXT = 300;
const SORTABLE = new Set(['str', 'int', 'float', 'bool', 'ref']);

/** A request the admin API refuses (400), with the reason shown to the admin. */
export class AdminRequestError extends Error {}

export interface AdminDataSources {
  readonly store: SharedStore;
  readonly hub: Hub;
}

export class AdminData {
  readonly #store: SharedStore;
  readonly #hub: Hub;
  readonly #schema: Schema;
  readonly #secrets: ReturnType<typeof secretFields>;

  constructor(sources: AdminDataSources) {
    this.#store = sources.store;
    this.#hub = sources.hub;
    this.#schema = sources.store.schema;
    this.#secrets = secretFields(this.#schema);
  }

  tables(): Array<{ name: string; rows: number; versions: number; bytes: number; fields: Array<{ name: string; kind: string; secret: boolean; sortable: boolean }> }> {
    const stats = this.#store.stats().tables;
    return this.#schema.tables.map((t) => ({
      name: t.name,
      rows: stats[t.name]?.rows ?? 0,
      versions: stats[t.name]?.versions ?? 0,
      bytes: stats[t.name]?.bytes ?? 0,
      fields: [
        { name: 'pk', kind: 'str', secret: false, sortable: true },
        ...t.fields.map((f) => ({ name: f.name, kind: f.element ? `${f.kind}<${f.element}>` : f.kind, secret: f.secret, sortable: !f.secret && SORTABLE.has(f.kind) })),
      ],
    }));
  }

  /** One page of `table`'s rows: `offset`, `limit` (<= MAX_PAGE), `sort` (a field, or pk), `desc`. */
  rows(query: URLSearchParams): { table: string; total: number; offset: number; limit: number; sort: string; desc: boolean; rows: Array<Record<string, unknown>> } {
    const name = query.get('table') ?? '';
    const table = this.#schema.byName.get(name);
    if (!table) throw new AdminRequestError(`unknown table ${JSON.stringify(name)}`);
    const offset = integer(query, 'offset', 0, 0, MAX_DEPTH - 1);
    const limit = integer(query, 'limit', 50, 1, MAX_PAGE);
    if (offset + limit > MAX_DEPTH) throw new AdminRequestError(`pages end ${MAX_DEPTH} rows deep (offset + limit); sort the other way to see the end of the table`);
    const sort = query.get('sort') || 'pk';
    const field = table.byName.get(sort);
    if (sort !== 'pk' && (!field || field.secret || !SORTABLE.has(field.kind))) {
      throw new AdminRequestError(`cannot sort ${table.name} by ${JSON.stringify(sort)} (a scalar field that is not secret, or pk)`);
    }
    const desc = query.get('desc') === '1' || query.get('desc') === 'true';
    const key = desc ? `-${sort}` : sort;
    const txn = this.#store.begin(); // read only: aborted below, so it never takes the commit lock
    try {
      const page = txn.db.query(table.name, { _sort: sort === 'pk' ? [key] : [key, 'pk'], _limit: offset + limit }).slice(offset);
      const secrets = this.#secrets.get(table.name);
      return {
        table: table.name,
        total: this.#store.stats().tables[table.name]?.rows ?? 0,
        offset,
        limit,
        sort,
        desc,
        rows: page.map((r) => shorten(maskRow({ ...r }, secrets))),
      };
    } finally {
      txn.abort();
    }
  }

  connections(): { total: number; listed: Array<{ id: string; address: string; auth: string | null; channels: string[]; bufferedBytes: number; queuedUnits: number; connectedAt: number }> } {
    const listed = [];
    let total = 0;
    for (const conn of this.#hub.connections.values()) {
      if (!conn.open) continue;
      total++;
      if (listed.length >= MAX_LISTED) continue;
      listed.push({
        id: conn.id,
        address: conn.address,
        auth: conn.auth === undefined ? null : cut(JSON.stringify(conn.auth) ?? 'null'),
        channels: [...conn.channels].slice(0, 20),
        bufferedBytes: conn.socket?.getBufferedAmount() ?? 0, // uWS backpressure: bytes not yet sent
        queuedUnits: conn.queue.length,
        connectedAt: conn.connectedAt,
      });
    }
    return { total, listed };
  }

  /**
   * Channels by subscribers (most first), with their history position (epoch, last offset,
   * oldest retained) when the store keeps channel history, else `history: null`.
   */
  channels(): { total: number; history: boolean; listed: Array<{ name: string; subscribers: number; position: ChannelPosition | null }> } {
    const sizes = Object.entries(this.#hub.channels.sizes()).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const history = keepsHistory(this.#store);
    return {
      total: sizes.length,
      history,
      listed: sizes.slice(0, MAX_LISTED).map(([name, subscribers]) => ({ name, subscribers, position: history ? this.#store.channelPosition(name) : null })),
    };
  }
}

/** Whether the store keeps channel history (a `withHistory` schema); lock-free. */
function keepsHistory(store: SharedStore): boolean {
  try {
    store.channelPosition('lexicons-admin-probe');
    return true;
  } catch (err) {
    if (isLexiconsError(err, ErrorCode.OPTION)) return false;
    throw err;
  }
}

function integer(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === null || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new AdminRequestError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

function cut(s: string): string {
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function shorten(row: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(row)) {
    if (typeof v === 'string') row[k] = cut(v);
    else if (Array.isArray(v)) row[k] = v.length > 20 ? [...v.slice(0, 20), `… ${v.length - 20} more`] : v;
  }
  return row;
}

