/**
 * @module main/live-registry
 * The live queries of the connections, on the main thread (docs/live-queries.md). It holds each
 * subscription's last result (opaque: the worker made it) and, per connection, what its last
 * refresh read; it never evaluates anything itself.
 *
 * - `$live` / `$unlive` frames add and remove subscriptions; a subscription dies with its
 *   connection.
 * - Every job result names the commits its thread made and what they wrote (tables and key
 *   stamp buckets, storage/read-set.ts). An index (table -> connections, key bucket ->
 *   connections) finds the connections whose last refresh read something a commit wrote; only
 *   those are refreshed, so a commit costs work for the live queries it touches, not for all.
 * - A refresh is ONE pool job per connection (workers/execute-live.ts): its live queries in one
 *   transaction at the latest commit S (only those a commit touched are evaluated); one refresh
 *   per connection in flight, so frames go out in increasing S, later commits coalesced.
 * - Read-your-writes: {@link LiveRegistry.whenShown} holds a batch's effects (its replies) until
 *   the callers' live queries that its commits touched reached those commits.
 * - A commit arriving while a refresh is in flight was matched against the OLD reads (the refresh
 *   may read new keys): such commits are logged and matched again against the new reads.
 */
import { MAX_LIVE_QUERIES_PER_CONNECTION } from '../live-query.js';
import type { CommitWrites } from '../job-contract.js';
import type { LiveJobQuery, LivePaths, LiveResult, LiveState } from '../live-job-contract.js';
import { errorFrame, liveErrorItem } from '../protocol.js';
import { Frame, WireCode } from '../wire.js';
import { messageOf } from '../errors.js';
import type { LogFn } from './log.js';
import type { JobRunner } from './pool.js';
import type { SocketConnection } from './socket-connection.js';

/** One live query of one connection: its client's id, name, arguments and last result. */
interface LiveSubscription {
  readonly id: string;
  readonly name: string;
  readonly args: Record<string, unknown>;
  state: LiveState | null;
}

/** A connection's live queries and what their last refresh read. */
interface LiveClient {
  readonly conn: SocketConnection;
  readonly subs: Map<string, LiveSubscription>;
  /** The commit every one of its live queries reflects (0: not yet refreshed). */
  at: number;
  /** The newest commit known to write what it read (refresh while `due > at`). */
  due: number;
  running: boolean;
  /** Over the backpressure threshold: refreshed on drain. */
  blocked: boolean;
  tables: Set<number>;
  keys: Set<number>;
  /** The pks written since `at` by the commits that touched it, per table (null: not known; the next refresh reads whole). */
  changed: Map<number, Set<string>> | null;
  changedCount: number;
  /** Held batches: `done` runs once `at >= target`. */
  waiters: Array<{ target: number; done: () => void }>;
}

const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Written pks a connection keeps for its next refresh; more, and that refresh reads whole. */
const MAX_CHANGED = 1024;

export class LiveRegistry {
  #runner: JobRunner | undefined;
  #names: ReadonlySet<string> = new Set();
  #maxInFlight = 2;
  #inFlight = 0;
  readonly #log: LogFn;
  readonly #clients = new Map<SocketConnection, LiveClient>();
  readonly #byTable = new Map<number, Set<LiveClient>>();
  readonly #byKey = new Map<number, Set<LiveClient>>();
  readonly #queue = new Set<LiveClient>();
  /** Commits that arrived while refreshes are in flight; `#logBase` is the sequence number of the first. */
  #recent: CommitWrites[] = [];
  #logBase = 0;
  readonly #running = new Map<LiveClient, number>();
  /** Every commit up to this id was reported (`#reported`: those above it); the incremental path needs them all. */
  #upTo = 0;
  readonly #reported = new Set<number>();
  #latest: () => number = () => 0;
  /** How the refreshes' queries got their results, since start (`lexicons_live_evaluations_total`). */
  readonly paths: LivePaths = { skipped: 0, incremental: 0, fallback: 0, rerun: 0 };

  constructor(log: LogFn) {
    this.#log = log;
  }

  /** Starts serving: the pool refresh jobs run on, the app's live query names, the pool's size, the latest commit id. */
  start(runner: JobRunner, names: Iterable<string>, workers: number, latest: () => number): void {
    this.#runner = runner;
    this.#latest = latest;
    this.#upTo = latest();
    this.#names = new Set(names);
    this.#maxInFlight = Math.max(2, 2 * workers);
  }

  /** Whether any connection holds a live query. */
  get active(): boolean {
    return this.#clients.size > 0;
  }

  /** Live queries held, over all connections (metrics, tests). */
  get size(): number {
    let n = 0;
    for (const client of this.#clients.values()) n += client.subs.size;
    return n;
  }

  /** Rows and groups of the live queries' last results held here (their memory, `lexicons_live_rows`). */
  get rows(): number {
    let n = 0;
    for (const client of this.#clients.values()) {
      for (const { state } of client.subs.values()) n += state === null ? 0 : state.form === 'rows' ? state.rows.length : state.form === 'groups' ? Object.keys(state.groups).length : 1;
    }
    return n;
  }

  /** A `$live` or `$unlive` frame of a lexicons.v1 connection. */
  frame(conn: SocketConnection, text: string): void {
    let body: Record<string, unknown> | undefined;
    let kind: string | undefined;
    try {
      const value = JSON.parse(text) as Record<string, unknown>;
      kind = Object.keys(value)[0];
      body = value[kind!] as Record<string, unknown>;
    } catch {
      // answered below
    }
    const id = typeof body?.id === 'string' && ID_PATTERN.test(body.id) ? body.id : undefined;
    if (id === undefined || body === undefined) {
      conn.send(errorFrame([`${kind ?? Frame.LIVE} needs {"id": "<1 to 64 letters, digits, _.:->", ...}`], WireCode.PROTOCOL));
      return;
    }
    if (kind === Frame.UNLIVE) return this.#unsubscribe(conn, id);
    const refuse = (code: string, message: string): void => void conn.send(`[${liveErrorItem(id, code, message)}]`);
    const { name, args } = body;
    if (typeof name !== 'string') return refuse(WireCode.PROTOCOL, `${Frame.LIVE} needs a "name"`);
    if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) return refuse(WireCode.BAD_ARGUMENTS, `Arguments of live query [${name}] must be an object`);
    if (!this.#names.has(name)) return refuse(WireCode.UNKNOWN_LIVE_QUERY, `No live query [${name}]`);
    let client = this.#clients.get(conn);
    if (client?.subs.has(id)) return refuse(WireCode.PROTOCOL, `live query id ${id} is in use on this connection`);
    if ((client?.subs.size ?? 0) >= MAX_LIVE_QUERIES_PER_CONNECTION) return refuse(WireCode.LIVE_LIMIT, `a connection holds at most ${MAX_LIVE_QUERIES_PER_CONNECTION} live queries`);
    if (client === undefined) {
      client = { conn, subs: new Map(), at: 0, due: 0, running: false, blocked: false, tables: new Set(), keys: new Set(), changed: new Map(), changedCount: 0, waiters: [] };
      this.#clients.set(conn, client);
    }
    client.subs.set(id, { id, name, args: (args ?? {}) as Record<string, unknown>, state: null });
    this.#schedule(client);
  }

  #unsubscribe(conn: SocketConnection, id: string): void {
    const client = this.#clients.get(conn);
    if (client === undefined || !client.subs.delete(id)) return;
    if (client.subs.size === 0 && !client.running) this.#drop(client);
  }

  /** The connection closed: its live queries end. */
  closed(conn: SocketConnection): void {
    const client = this.#clients.get(conn);
    if (client !== undefined) this.#drop(client);
  }

  /** The socket drained: a refresh held back by backpressure may go. */
  drained(conn: SocketConnection): void {
    const client = this.#clients.get(conn);
    if (client?.blocked) {
      client.blocked = false;
      this.#schedule(client);
    }
  }

  /** Commits some thread made: the connections whose live queries read what they wrote are refreshed. */
  committed(commits: readonly CommitWrites[]): void {
    for (const c of commits) this.#note(c.id);
    if (this.#clients.size === 0) return;
    if (this.#running.size > 0) for (const c of commits) this.#recent.push(c);
    for (const c of commits) {
      const hit = new Set<LiveClient>();
      for (const t of c.tables) for (const client of this.#byTable.get(t) ?? []) hit.add(client);
      for (const k of c.keys) for (const client of this.#byKey.get(k) ?? []) hit.add(client);
      for (const client of hit) this.#touch(client, c.id, c);
    }
  }

  #note(id: number): void {
    if (id <= this.#upTo) return;
    this.#reported.add(id);
    while (this.#reported.delete(this.#upTo + 1)) this.#upTo++;
  }

  /** A job died (its commits may be lost): every connection is refreshed once, whole. */
  suspect(): void {
    const latest = this.#latest();
    this.#upTo = Math.max(this.#upTo, latest);
    for (const id of this.#reported) if (id <= this.#upTo) this.#reported.delete(id);
    for (const client of this.#clients.values()) this.#touch(client, latest, undefined);
  }

  /**
   * Runs `apply` (a batch's effects) once the live queries of `connections` that `commits` touched
   * reflect them (read-your-writes); at once when none did.
   */
  whenShown(commits: readonly CommitWrites[], connections: readonly SocketConnection[], apply: () => void): void {
    let waiting = 0;
    const one = (): void => {
      if (--waiting === 0) apply();
    };
    for (const conn of connections) {
      const client = this.#clients.get(conn);
      if (client === undefined) continue;
      let target = 0;
      for (const c of commits) if (c.id > client.at && c.id > target && this.#read(client, c)) target = c.id;
      if (target === 0 && [...client.subs.values()].some((sub) => sub.state === null)) {
        // A first result is on its way, at a snapshot that may precede these commits: one more refresh.
        for (const c of commits) if (c.id > client.at) this.#touch(client, c.id, c);
        target = client.due;
      }
      if (target <= client.at) continue;
      waiting++;
      client.waiters.push({ target, done: one });
    }
    if (waiting === 0) apply();
  }

  #read(client: LiveClient, c: CommitWrites): boolean {
    return c.tables.some((t) => client.tables.has(t)) || c.keys.some((k) => client.keys.has(k));
  }

  /** Commit `commitId` (`c`: what it wrote; undefined: not known) wrote something the connection read. */
  #touch(client: LiveClient, commitId: number, c: CommitWrites | undefined): void {
    if (commitId <= client.at) return;
    if (c === undefined) client.changed = null;
    else if (client.changed !== null) {
      const changed = client.changed;
      c.tables.forEach((t, i) => {
        let set = changed.get(t);
        if (set === undefined) changed.set(t, (set = new Set()));
        for (const pk of c.pks[i] ?? []) {
          if (set.has(pk)) continue;
          set.add(pk);
          client.changedCount++;
        }
      });
      if (client.changedCount > MAX_CHANGED) client.changed = null;
    }
    if (commitId <= client.due) return;
    client.due = commitId;
    this.#schedule(client);
  }

  #schedule(client: LiveClient): void {
    if (client.running || this.#queue.has(client) || this.#clients.get(client.conn) !== client) return;
    const socket = client.conn.socket;
    if (socket !== null && socket.getBufferedAmount() > client.conn.maxBackpressure / 2) {
      client.blocked = true; // coalesced: refreshed once at the latest commit when it drained
      return;
    }
    this.#queue.add(client);
    this.#pump();
  }

  #pump(): void {
    const runner = this.#runner;
    if (runner === undefined) return;
    for (const client of this.#queue) {
      if (this.#inFlight >= this.#maxInFlight) return;
      this.#queue.delete(client);
      this.#refresh(runner, client);
    }
  }

  #refresh(runner: JobRunner, client: LiveClient): void {
    const subs = [...client.subs.values()];
    client.running = true;
    this.#inFlight++;
    this.#running.set(client, this.#logBase + this.#recent.length);
    const queries: LiveJobQuery[] = subs.map(({ id, name, args, state }) => ({ id, name, args, state }));
    const changed = client.changed === null ? null : Object.fromEntries([...client.changed].map(([t, pks]) => [t, [...pks]]));
    client.changed = new Map();
    client.changedCount = 0;
    runner.run<LiveResult>({ kind: 'live', connection: client.conn.snapshot(), queries, changed, upTo: this.#upTo, at: client.at }).then(
      (result) => {
        if (result.commits !== undefined) this.committed(result.commits);
        this.#settle(client, () => this.#refreshed(client, subs, result));
      },
      (err: unknown) => this.#settle(client, () => this.#failed(client, subs, err)),
    );
  }

  #settle(client: LiveClient, apply: () => void): void {
    this.#inFlight--;
    client.running = false;
    const from = this.#running.get(client)!;
    this.#running.delete(client);
    try {
      if (this.#clients.get(client.conn) === client) apply();
      this.#recheck(client, from);
    } finally {
      this.#trimLog();
      if (client.subs.size === 0) this.#drop(client);
      else if (client.due > client.at || [...client.subs.values()].some((s) => s.state === null)) this.#schedule(client);
      this.#pump();
    }
  }

  #refreshed(client: LiveClient, subs: readonly LiveSubscription[], result: LiveResult): void {
    for (const entry of result.logs) this.#log(entry.status, entry.data);
    for (const path of ['skipped', 'incremental', 'fallback', 'rerun'] as const) this.paths[path] += result.paths[path];
    const items: string[] = [];
    subs.forEach((sub, i) => {
      const outcome = result.outcomes[i]!;
      if (client.subs.get(sub.id) !== sub) return; // ended meanwhile
      if (outcome.ok) sub.state = outcome.state ?? sub.state;
      else client.subs.delete(sub.id);
      if (outcome.item !== undefined) items.push(outcome.item);
    });
    this.#index(client, new Set(result.deps.tables), new Set(result.deps.keys));
    client.at = Math.max(client.at, result.snapshot);
    if (items.length > 0) client.conn.send(`[${items.join(',')}]`);
    this.#release(client);
  }

  #failed(client: LiveClient, subs: readonly LiveSubscription[], err: unknown): void {
    // A refresh that failed (time limit, a dead worker) ends the live queries it carried.
    this.#log('WORKER-ERROR', { message: `live query refresh failed: ${messageOf(err)}`, connection: client.conn.id });
    const code = (err as { code?: unknown })?.code === 'TIMEOUT' ? WireCode.TIMEOUT : WireCode.WORKER_FAILED;
    const items: string[] = [];
    for (const sub of subs) {
      if (client.subs.get(sub.id) !== sub) continue;
      client.subs.delete(sub.id);
      items.push(liveErrorItem(sub.id, code, messageOf(err)));
    }
    if (items.length > 0) client.conn.send(`[${items.join(',')}]`);
    client.at = Math.max(client.at, client.due);
    this.#release(client);
  }

  /** Commits that arrived during the refresh, matched against what it read (see the module comment). */
  #recheck(client: LiveClient, from: number): void {
    for (let i = Math.max(0, from - this.#logBase); i < this.#recent.length; i++) {
      const c = this.#recent[i]!;
      if (c.id > client.at && this.#read(client, c)) this.#touch(client, c.id, c);
    }
  }

  #trimLog(): void {
    let min = this.#logBase + this.#recent.length;
    for (const from of this.#running.values()) min = Math.min(min, from);
    const drop = min - this.#logBase;
    if (drop <= 0) return;
    this.#recent = this.#recent.slice(drop);
    this.#logBase = min;
  }

  /** Runs the held batches whose commits the connection's live queries now reflect. */
  #release(client: LiveClient): void {
    if (client.waiters.length === 0) return;
    const ready = client.waiters.filter((w) => w.target <= client.at);
    client.waiters = client.waiters.filter((w) => w.target > client.at);
    for (const w of ready) w.done();
  }

  /** Moves the connection in the index from what it read before to what it read now. */
  #index(client: LiveClient, tables: Set<number>, keys: Set<number>): void {
    this.#unindex(client);
    client.tables = tables;
    client.keys = keys;
    for (const t of tables) add(this.#byTable, t, client);
    for (const k of keys) add(this.#byKey, k, client);
  }

  #unindex(client: LiveClient): void {
    for (const t of client.tables) remove(this.#byTable, t, client);
    for (const k of client.keys) remove(this.#byKey, k, client);
  }

  #drop(client: LiveClient): void {
    if (this.#clients.get(client.conn) !== client) return;
    this.#clients.delete(client.conn);
    this.#queue.delete(client);
    this.#unindex(client);
    client.subs.clear();
    const waiters = client.waiters;
    client.waiters = [];
    for (const w of waiters) w.done();
  }
}

function add(index: Map<number, Set<LiveClient>>, key: number, client: LiveClient): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(client);
}

function remove(index: Map<number, Set<LiveClient>>, key: number, client: LiveClient): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(client);
  if (set.size === 0) index.delete(key);
}
