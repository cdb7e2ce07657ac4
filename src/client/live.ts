/**
 * @module client/live
 * The client's live queries (docs/live-queries.md): `client.live(name, args)` subscribes with
 * `$live` and materializes the result the server keeps current: rows by pk in the server's order,
 * groups of aggregates, or a value. Every `$live` item names the commit `at` it reflects; all live
 * queries of one client move to a commit together. After a reconnect every open live query
 * subscribes again and gets a fresh whole result (`result` event).
 */
import { Frame } from '../wire.js';
import { ClientError } from './errors.js';
import { emit, isObject } from './util.js';

/** A row of a live query's result (untyped). */
export type LiveRow = { readonly pk: string } & Record<string, unknown>;
/** The groups of an aggregate live query: group key → values. */
export type LiveGroups = Record<string, Record<string, number | null>>;

/** What a live query's handlers receive: a whole result, the changes of one commit, or the error that ended it. */
export type LiveEvent =
  | { readonly type: 'result'; readonly at: number }
  | {
      readonly type: 'change';
      readonly at: number;
      readonly inserted?: readonly LiveRow[];
      readonly updated?: readonly LiveRow[];
      readonly deleted?: readonly string[];
      readonly groups?: Readonly<Record<string, Record<string, number | null> | null>>;
    }
  | { readonly type: 'error'; readonly error: ClientError };

/** A live query's materialized result; `S` is `{ rows }`, `{ groups }` or `{ value }` as the query returns. */
export interface LiveView<S = { rows: LiveRow[]; groups: LiveGroups; value: unknown }> {
  /** The rows (rows forms), in the server's order. */
  readonly rows: S extends { rows: infer R } ? R : readonly LiveRow[];
  /** The groups of aggregates by group key (aggregate form). */
  readonly groups: S extends { groups: infer G } ? G : LiveGroups;
  /** The value (a query returning something other than rows). */
  readonly value: S extends { value: infer V } ? V : unknown;
  /** The commit the result reflects (0 before the first result). */
  readonly at: number;
  /** Set when the server refused or ended the live query (its code: e.g. `FORBIDDEN`, `BAD_ARGUMENTS`). */
  readonly error: ClientError | undefined;
  /** Resolves with the view at its first result; rejects with its error. */
  readonly ready: Promise<LiveView<S>>;
  /** Runs `handler` at every result, change and error. Returns the function that removes it. */
  on(handler: (event: LiveEvent) => void): () => void;
  /** Ends the live query (`$unlive`). */
  close(): void;
}

class View {
  readonly id: string;
  readonly frame: string;
  at = 0;
  error: ClientError | undefined;
  value: unknown;
  groups: LiveGroups = {};
  readonly ready: Promise<View>;
  #byPk = new Map<string, LiveRow>();
  #order: string[] = [];
  #rows: LiveRow[] | undefined;
  #settle: ((error?: ClientError) => void) | undefined;
  readonly #handlers = new Set<(event: LiveEvent) => void>();
  readonly #owner: LiveSet;

  constructor(owner: LiveSet, id: string, name: string, args: unknown) {
    this.#owner = owner;
    this.id = id;
    this.frame = JSON.stringify({ [Frame.LIVE]: { id, name, args: args ?? {} } });
    this.ready = new Promise((resolve, reject) => {
      this.#settle = (error) => (error ? reject(error) : resolve(this));
    });
    this.ready.catch(() => undefined); // a refusal is also on `error` and the handlers
  }

  get rows(): LiveRow[] {
    return (this.#rows ??= this.#order.map((pk) => this.#byPk.get(pk)!));
  }

  on(handler: (event: LiveEvent) => void): () => void {
    this.#handlers.add(handler);
    return () => void this.#handlers.delete(handler);
  }

  close(): void {
    this.#owner.close(this);
  }

  /** One `$live` item for this view. */
  apply(body: Record<string, unknown>): void {
    if (isObject(body.error)) {
      const { code, message } = body.error;
      this.error = new ClientError(String(code), String(message));
      this.#settle?.(this.error);
      emit(this.#handlers, { type: 'error', error: this.error });
      return;
    }
    this.at = Number(body.at);
    const changes = body.changes;
    if (!isObject(changes)) {
      const rows = Array.isArray(body.rows) ? (body.rows as LiveRow[]) : [];
      this.#byPk = new Map(rows.map((r) => [r.pk, r]));
      this.#order = rows.map((r) => r.pk);
      this.#rows = undefined;
      this.groups = isObject(body.groups) ? (body.groups as LiveGroups) : {};
      this.value = body.value;
      this.#settle?.();
      this.#settle = undefined;
      emit(this.#handlers, { type: 'result', at: this.at });
      return;
    }
    if (this.#settle !== undefined) return; // changes before the first whole result belong to an older subscription
    const { inserted = [], updated = [], deleted = [], order, groups } = changes as { inserted?: LiveRow[]; updated?: LiveRow[]; deleted?: string[]; order?: string[]; groups?: Record<string, Record<string, number | null> | null> };
    const gone = new Set(deleted);
    for (const pk of deleted) this.#byPk.delete(pk);
    for (const delta of updated) this.#byPk.set(delta.pk, { ...this.#byPk.get(delta.pk), ...delta });
    for (const row of inserted) this.#byPk.set(row.pk, row);
    this.#order = order ?? [...this.#order.filter((pk) => !gone.has(pk)), ...inserted.map((r) => r.pk)];
    this.#rows = undefined;
    if (groups !== undefined) {
      const next = { ...this.groups };
      for (const [key, values] of Object.entries(groups)) {
        if (values === null) delete next[key];
        else next[key] = values;
      }
      this.groups = next;
    }
    emit(this.#handlers, { type: 'change', at: this.at, ...(changes as object) });
  }
}

/** The client's live queries by id. */
export class LiveSet {
  readonly #views = new Map<string, View>();
  readonly #send: (text: string) => void;
  #next = 1;

  /** `send` sends a frame when the client is open (and drops it otherwise). */
  constructor(send: (text: string) => void) {
    this.#send = send;
  }

  open(name: string, args: unknown): LiveView {
    const view = new View(this, `L${this.#next++}`, name, args);
    this.#views.set(view.id, view);
    this.#send(view.frame);
    return view as unknown as LiveView;
  }

  close(view: View): void {
    if (this.#views.delete(view.id)) this.#send(JSON.stringify({ [Frame.UNLIVE]: { id: view.id } }));
  }

  /** A `$live` item from the server. */
  receive(body: unknown): void {
    if (!isObject(body) || typeof body.id !== 'string') return;
    const view = this.#views.get(body.id);
    if (view === undefined) return;
    if (body.error !== undefined) this.#views.delete(view.id);
    view.apply(body);
  }

  /** The connection is open (again): every live query subscribes again (a fresh whole result follows). */
  opened(): void {
    for (const view of this.#views.values()) this.#send(view.frame);
  }
}
