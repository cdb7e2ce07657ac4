/**
 * @module main/channels
 * The channel registry and fan-out on the main thread.
 *
 * Declared channels (classes) always exist; run-time channels are created and dropped with
 * `sv.createChannel` / `sv.dropChannel`. Subscriptions live in uWS's native pub/sub (topics =
 * channel names) and, mirrored, in `members` (needed for `sv.info()`, for dropping a channel,
 * and to deduplicate recipients when one payload targets several channels).
 *
 * Fan-out: a payload for one channel is one `app.publish` (native, no JS loop over sockets);
 * a payload for several channels goes once to each connection subscribed to at least one of
 * them. Unknown channel names are logged CHANNEL-NOT-FOUND and skipped. A publish may leave out
 * one connection (`except`: a caller that gets its own tagged copy): for one channel that is
 * uWS's `WebSocket.publish`, which skips the publishing socket.
 *
 * Slow subscribers (docs/channels.md "Slow clients"): uWS closes a socket whose buffer is over
 * `limits.maxBackpressureBytes` when a send finds it so (`closeOnBackpressureLimit`: no close
 * frame, 1006): that is the `disconnect` policy of native publishes. A `drop` channel is never
 * published natively: its frames go to each member from here, skipped for a member whose buffer
 * would exceed the limit (the client sees the gap in offsets and recovers it), so its memory
 * stays within the limit and uWS never closes it for that channel. Frames sent from here to a
 * `disconnect` member over the limit close it with 4008 "slow consumer: reconnect and recover".
 */
import type { TemplatedApp } from 'uWebSockets.js';
import { ChannelRules, type ChannelRule } from '../channel-rules.js';
import type { LogFn } from './log.js';
import type { SocketConnection } from './socket-connection.js';

/** What `channels.info()` tells about one channel (read-only; the admin channels view). */
export interface ChannelInfo {
  name: string;
  kind: 'declared' | 'runtime';
  subscribers: number;
  /** The class (or pattern) its rules come from; '' for none. */
  rules: string;
  history: { size?: number; maxAgeSeconds?: number } | null;
  /** Epoch and delivered offset of a history channel that published since start (or before). */
  position: { epoch: string; offset: number } | null;
  presence: boolean;
  /** Presence members (sessions), when `presence`. */
  members: number | null;
  slowClient: 'disconnect' | 'drop';
}

const EMPTY: ReadonlySet<SocketConnection> = new Set();

export class ChannelRegistry {
  readonly #declared: ReadonlySet<string>;
  readonly #runtime = new Set<string>();
  readonly #members = new Map<string, Set<SocketConnection>>();
  readonly #log: LogFn;
  readonly rules: ChannelRules;
  #app: TemplatedApp | null = null;
  /** Bumped on every create/drop of a run-time channel (workers refresh their cache). */
  version = 0;
  /** Extra figures for {@link info} (history positions, presence counts), set by the hub. */
  figures: { position(name: string): ChannelInfo['position']; members(name: string): number | null } = { position: () => null, members: () => null };
  /** Cluster mode: told when a channel gets its first member (`present`) or loses its last (main/cluster-fanout.ts). */
  onMembers: ((name: string, present: boolean) => void) | undefined;

  constructor(declared: Iterable<string>, log: LogFn, rules: ChannelRules = new ChannelRules([])) {
    this.#declared = new Set(declared);
    for (const name of this.#declared) this.#members.set(name, new Set());
    this.#log = log;
    this.rules = rules;
  }

  attach(app: TemplatedApp): void {
    this.#app = app;
  }

  exists(name: string): boolean {
    return this.#members.has(name);
  }

  runtimeNames(): string[] {
    return [...this.#runtime];
  }

  create(name: string): void {
    if (this.#members.has(name)) return;
    this.#runtime.add(name);
    this.#members.set(name, new Set());
    this.version++;
  }

  /** Drops a run-time channel; returns the connections that were in it. */
  drop(name: string): SocketConnection[] {
    if (this.#declared.has(name)) {
      this.#log('ERROR', { message: `Channel [${name}] is declared and cannot be dropped` });
      return [];
    }
    const members = this.#members.get(name);
    if (!members) return [];
    for (const conn of members) {
      conn.channels.delete(name);
      if (conn.open) conn.socket!.unsubscribe(name);
    }
    this.#members.delete(name);
    if (members.size > 0) this.onMembers?.(name, false);
    this.#runtime.delete(name);
    this.version++;
    return [...members];
  }

  /**
   * Adds `conn` to the channel; `live` false: a member that gets nothing yet (its recovery is
   * being sent, main/catch-up.ts) until {@link goLive}.
   */
  subscribe(conn: SocketConnection, name: string, live = true): boolean {
    const members = this.#members.get(name);
    if (!members) {
      this.#log('CHANNEL-NOT-FOUND', { channel: name, connection: conn.id, action: 'subscribe' });
      return false;
    }
    if (!conn.open || conn.channels.has(name)) return conn.channels.has(name);
    conn.channels.add(name);
    members.add(conn);
    if (members.size === 1) this.onMembers?.(name, true);
    if (live) this.goLive(conn, name);
    return true;
  }

  /** A member starts getting the channel's items (a drop channel is fanned out from here, never natively). */
  goLive(conn: SocketConnection, name: string): void {
    if (!conn.open || !conn.channels.has(name)) return;
    if (this.rules.rule(name).slowClient !== 'drop') conn.socket!.subscribe(name);
  }

  /** A member stops getting the channel's items for now (a recovery is sent instead). */
  pause(conn: SocketConnection, name: string): void {
    if (conn.open && this.rules.rule(name).slowClient !== 'drop') conn.socket!.unsubscribe(name);
  }

  /** Whether `conn` gets the channel's items now (not while its recovery is being sent). */
  #live(conn: SocketConnection, name: string): boolean {
    return conn.catchUp === null || !conn.catchUp.has(name);
  }

  unsubscribe(conn: SocketConnection, name: string): void {
    if (!conn.channels.delete(name)) return;
    this.#forget(conn, name);
    if (conn.open) conn.socket!.unsubscribe(name);
  }

  /** On close: uWS already dropped the native subscriptions; forget the mirror. */
  leaveAll(conn: SocketConnection): void {
    for (const name of conn.channels) this.#forget(conn, name);
    conn.channels.clear();
  }

  #forget(conn: SocketConnection, name: string): void {
    const members = this.#members.get(name);
    if (members?.delete(conn) === true && members.size === 0) this.onMembers?.(name, false);
  }

  /**
   * Sends `text` once to every connection in at least one of `names` but `except` and the members
   * of `skip` (cluster fan-out: they got it through another partition); returns recipients (approx.).
   */
  publish(names: readonly string[], text: string | Uint8Array, except?: SocketConnection, skip?: readonly string[]): number {
    const app = this.#app;
    if (!app) return 0;
    const known: string[] = [];
    for (const name of names) {
      if (this.#members.has(name)) known.push(name);
      else this.#log('CHANNEL-NOT-FOUND', { channel: name, action: 'broadcast' });
    }
    if (known.length === 0) return 0;
    const skipped = this.#skipped(skip);
    const drop = this.#dropRules(known);
    if (drop !== undefined) return this.#publishDropAware(known, drop, text, except, skipped);
    if (known.length === 1 && skipped === undefined) {
      const name = known[0]!;
      const members = this.#members.get(name)!;
      if (except !== undefined && except.open && members.has(except)) {
        if (members.size > 1) except.socket!.publish(name, text, false);
        return members.size - 1;
      }
      if (members.size > 0) app.publish(name, text, false);
      return members.size;
    }
    const recipients = new Set<SocketConnection>();
    for (const name of known) for (const conn of this.#members.get(name)!) if (this.#live(conn, name)) recipients.add(conn);
    if (except !== undefined) recipients.delete(except);
    if (skipped !== undefined) for (const conn of skipped) recipients.delete(conn);
    const frame = typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8');
    for (const conn of recipients) conn.send(frame);
    return recipients.size;
  }

  /** The members of `names` (undefined when there are none). */
  #skipped(names: readonly string[] | undefined): Set<SocketConnection> | undefined {
    if (names === undefined) return undefined;
    let out: Set<SocketConnection> | undefined;
    for (const name of names) for (const conn of this.#members.get(name) ?? EMPTY) (out ??= new Set()).add(conn);
    return out;
  }

  /** The rules of `names` when one of them drops items for slow members, else undefined. */
  #dropRules(names: readonly string[]): ChannelRule[] | undefined {
    let drop = false;
    const rules = names.map((name) => {
      const rule = this.rules.rule(name);
      drop ||= rule.slowClient === 'drop';
      return rule;
    });
    return drop ? rules : undefined;
  }

  /**
   * Fan-out from here when a target channel is `drop`: a member over the limit is skipped if
   * every target channel it is in drops, and closed with 4008 otherwise.
   */
  #publishDropAware(names: readonly string[], rules: readonly ChannelRule[], text: string | Uint8Array, except: SocketConnection | undefined, skipped: ReadonlySet<SocketConnection> | undefined): number {
    const frame = typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8');
    const drops = new Map<SocketConnection, boolean>();
    names.forEach((name, i) => {
      const dropping = rules[i]!.slowClient === 'drop';
      for (const conn of this.#members.get(name)!) if (this.#live(conn, name)) drops.set(conn, (drops.get(conn) ?? true) && dropping);
    });
    if (except !== undefined) drops.delete(except);
    if (skipped !== undefined) for (const conn of skipped) drops.delete(conn);
    let sent = 0;
    for (const [conn, dropping] of drops) {
      // Dropped for this member while uWS holds more than the limit (uWS's own rule for its
      // sends: the memory per slow member stays within the limit plus one frame); it recovers the gap.
      if (dropping && !conn.fits(0)) continue;
      if (conn.send(frame)) sent++;
    }
    return sent;
  }

  /** Read-only figures of every channel (the admin channels view). */
  info(): ChannelInfo[] {
    const out: ChannelInfo[] = [];
    for (const [name, members] of this.#members) {
      const rule = this.rules.rule(name);
      out.push({
        name,
        kind: this.#declared.has(name) ? 'declared' : 'runtime',
        subscribers: members.size,
        rules: rule.source,
        history: rule.history === null ? null : { ...rule.history },
        position: rule.history === null ? null : this.figures.position(name),
        presence: rule.presence,
        members: rule.presence ? this.figures.members(name) : null,
        slowClient: rule.slowClient,
      });
    }
    return out;
  }

  /** The connections in a channel (none for an unknown one). */
  membersOf(name: string): ReadonlySet<SocketConnection> {
    return this.#members.get(name) ?? EMPTY;
  }

  sizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, members] of this.#members) out[name] = members.size;
    return out;
  }

  get count(): number {
    return this.#members.size;
  }
}
