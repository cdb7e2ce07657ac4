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
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { LogFn } from './log.js';
import type { SocketConnection } from './socket-connection.js';

export class ChannelRegistry {
  readonly #declared: ReadonlySet<string>;
  readonly #runtime = new Set<string>();
  readonly #members = new Map<string, Set<SocketConnection>>();
  readonly #log: LogFn;
  #app: TemplatedApp | null = null;
  /** Bumped on every create/drop of a run-time channel (workers refresh their cache). */
  version = 0;

  constructor(declared: Iterable<string>, log: LogFn) {
    this.#declared = new Set(declared);
    for (const name of this.#declared) this.#members.set(name, new Set());
    this.#log = log;
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

  drop(name: string): void {
    if (this.#declared.has(name)) {
      this.#log('ERROR', { message: `Channel [${name}] is declared and cannot be dropped` });
      return;
    }
    const members = this.#members.get(name);
    if (!members) return;
    for (const conn of members) {
      conn.channels.delete(name);
      if (conn.open) conn.socket!.unsubscribe(name);
    }
    this.#members.delete(name);
    this.#runtime.delete(name);
    this.version++;
  }

  subscribe(conn: SocketConnection, name: string): boolean {
    const members = this.#members.get(name);
    if (!members) {
      this.#log('CHANNEL-NOT-FOUND', { channel: name, connection: conn.id, action: 'subscribe' });
      return false;
    }
    if (!conn.open || conn.channels.has(name)) return conn.channels.has(name);
    conn.socket!.subscribe(name);
    conn.channels.add(name);
    members.add(conn);
    return true;
  }

  unsubscribe(conn: SocketConnection, name: string): void {
    if (!conn.channels.delete(name)) return;
    this.#members.get(name)?.delete(conn);
    if (conn.open) conn.socket!.unsubscribe(name);
  }

  /** On close: uWS already dropped the native subscriptions; forget the mirror. */
  leaveAll(conn: SocketConnection): void {
    for (const name of conn.channels) this.#members.get(name)?.delete(conn);
    conn.channels.clear();
  }

  /** Sends `text` once to every connection in at least one of `names` but `except`; returns recipients (approx.). */
  publish(names: readonly string[], text: string | Uint8Array, except?: SocketConnection): number {
    const app = this.#app;
    if (!app) return 0;
    const known: string[] = [];
    for (const name of names) {
      if (this.#members.has(name)) known.push(name);
      else this.#log('CHANNEL-NOT-FOUND', { channel: name, action: 'broadcast' });
    }
    if (known.length === 0) return 0;
    if (known.length === 1) {
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
    for (const name of known) for (const conn of this.#members.get(name)!) recipients.add(conn);
    if (except !== undefined) recipients.delete(except);
    const frame = typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8');
    for (const conn of recipients) conn.send(frame);
    return recipients.size;
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
