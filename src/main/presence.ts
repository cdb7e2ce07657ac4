/**
 * @module main/presence
 * Presence of `static presence = true` channels (docs/channels.md "Presence"), on the main thread.
 *
 * Members are sessions (main/sessions.ts; a connection without one is its own member), each with
 * its public `ws.meta`, so a resumed session is the same member: no leave/join pair. A member
 * joins when one of its connections joins the channel and leaves when it leaves it, when its
 * session expires (a dropped connection: after `limits.resumeGraceSeconds`), or at once on a clean
 * close (1000/1001).
 *
 * lexicons.v1 subscribers get, on joining, `[{"$presence": {"channel": "Public", "members":
 * [{"id": ..., "meta": ...}]}}]`, then every {@link PRESENCE_BATCH_MS} the changes since:
 * `[{"$presence": {"channel": "Public", "join": [...], "leave": [...]}}]` (one entry per member
 * and batch: its last state), through a uWS topic of their own (v0 subscribers never see them).
 * Applying both as set operations, in order, converges to the members list.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { Json, PresenceMember } from '../components.js';
import type { ChannelRules } from '../channel-rules.js';
import { Frame } from '../wire.js';
import type { SocketConnection } from './socket-connection.js';

/** Changes are sent in batches this far apart. */
export const PRESENCE_BATCH_MS = 100;

/** The uWS topic of a channel's presence changes (no channel name starts with U+0001). */
function topicOf(channel: string): string {
  return `\u0001presence:${channel}`;
}

/** The member identity of a connection: its session's id, or its own. */
export function memberId(conn: SocketConnection): string {
  return conn.session?.id ?? conn.id;
}

function memberText(member: PresenceMember): string {
  return `{"id":${JSON.stringify(member.id)},"meta":${JSON.stringify(member.meta ?? null)}}`;
}

export class Presence {
  readonly #rules: ChannelRules;
  /** channel → member id → member. */
  readonly #members = new Map<string, Map<string, PresenceMember>>();
  /** channel → member id → its state to announce (null: left). */
  readonly #pending = new Map<string, Map<string, PresenceMember | null>>();
  #app: TemplatedApp | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(rules: ChannelRules) {
    this.#rules = rules;
  }

  attach(app: TemplatedApp): void {
    this.#app = app;
  }

  tracks(channel: string): boolean {
    return this.#rules.rule(channel).presence;
  }

  /** A connection joined a presence channel: its member joins (if new); a v1 one gets the members list. */
  join(conn: SocketConnection, channel: string): void {
    let members = this.#members.get(channel);
    if (members === undefined) this.#members.set(channel, (members = new Map()));
    const id = memberId(conn);
    const member: PresenceMember = { id, meta: conn.meta ?? null };
    const before = members.get(id);
    members.set(id, member);
    if (before === undefined || JSON.stringify(before.meta) !== JSON.stringify(member.meta)) this.#announce(channel, id, member);
    if (conn.v1 === null || !conn.open) return;
    conn.socket!.subscribe(topicOf(channel));
    let list = '';
    for (const m of members.values()) list += (list === '' ? '' : ',') + memberText(m);
    conn.send(`[{"${Frame.PRESENCE}":{"channel":${JSON.stringify(channel)},"members":[${list}]}}]`);
  }

  /** A connection left the channel (its socket stops getting the changes); its member leaves when `leave`. */
  unwatch(conn: SocketConnection, channel: string): void {
    if (conn.v1 !== null && conn.open) conn.socket!.unsubscribe(topicOf(channel));
  }

  /** A member leaves a channel. */
  leave(id: string, channel: string): void {
    const members = this.#members.get(channel);
    if (members === undefined || !members.delete(id)) return;
    if (members.size === 0) this.#members.delete(channel);
    this.#announce(channel, id, null);
  }

  /** A member's meta changed: re-announced in the channels it is in. */
  meta(id: string, meta: Json | undefined, channels: Iterable<string>): void {
    for (const channel of channels) {
      const member = this.#members.get(channel)?.get(id);
      if (member === undefined) continue;
      member.meta = meta ?? null;
      this.#announce(channel, id, { id, meta: member.meta });
    }
  }

  #announce(channel: string, id: string, member: PresenceMember | null): void {
    let pending = this.#pending.get(channel);
    if (pending === undefined) this.#pending.set(channel, (pending = new Map()));
    pending.set(id, member);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), PRESENCE_BATCH_MS);
      this.#timer.unref();
    }
  }

  /** Sends the batched changes of every channel (also at shutdown). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const app = this.#app;
    for (const [channel, pending] of this.#pending) {
      let join = '';
      let leave = '';
      for (const [id, member] of pending) {
        if (member === null) leave += (leave === '' ? '' : ',') + JSON.stringify(id);
        else join += (join === '' ? '' : ',') + memberText(member);
      }
      app?.publish(topicOf(channel), `[{"${Frame.PRESENCE}":{"channel":${JSON.stringify(channel)},"join":[${join}],"leave":[${leave}]}}]`, false);
    }
    this.#pending.clear();
  }

  /** The members of a channel (`sv.presence`). */
  list(channel: string): PresenceMember[] {
    return [...(this.#members.get(channel)?.values() ?? [])].map((m) => ({ id: m.id, meta: m.meta }));
  }

  count(channel: string): number {
    return this.#members.get(channel)?.size ?? 0;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
