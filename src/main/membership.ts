/**
 * @module main/membership
 * A connection joining and leaving channels on the main thread, with what the channel's rules add
 * (docs/channels.md): a lexicons.v1 connection joining a history channel first gets its
 * `$subscribed` frame (with the items it missed, main/recovery.ts), then is subscribed natively;
 * a presence channel's member joins (main/presence.ts). Leaving (an app's `ws.unsubscribe`, a
 * dropped channel) tells a v1 connection `[{"$unsubscribed": {"channel": "Public"}}]` for history
 * and presence channels, so its client stops tracking them. Also: `$recover` requests, and what a
 * closing connection leaves behind.
 */
import type { ChannelPositionRef, WorkerRecovery } from '../job-contract.js';
import { Frame } from '../wire.js';
import type { Hub } from './hub.js';
import { memberId } from './presence.js';
import { pump, startRecovery } from './catch-up.js';
import { positionOf } from './recovery.js';
import type { SocketConnection } from './socket-connection.js';

/** Joins `conn` to `channel` (idempotent); false when the channel does not exist (logged) or the socket closed. */
export function joinChannel(hub: Hub, conn: SocketConnection, channel: string, recovery?: WorkerRecovery): boolean {
  if (!conn.open) return false;
  if (conn.channels.has(channel)) return true;
  if (!hub.channels.exists(channel)) return hub.channels.subscribe(conn, channel); // logs CHANNEL-NOT-FOUND
  const rule = hub.rules.rule(channel);
  let live = true;
  // Cluster mode: the first local member of a history channel; the node starts reading its fan-out partition.
  if (rule.history !== null && hub.fanout !== undefined && hub.channels.membersOf(channel).size === 0) hub.delivery.resync(channel);
  if (rule.history !== null && conn.v1 !== null) {
    const position = conn.positions?.get(channel);
    conn.positions?.delete(channel);
    live = startRecovery(hub, conn, channel, position, recovery);
  }
  // Not live while the recovery is still being sent (main/catch-up.ts).
  const joined = hub.channels.subscribe(conn, channel, live);
  if (!live) pump(hub, conn); // what fits now; the rest on drain
  if (joined && rule.presence) hub.presence.join(conn, channel);
  return joined;
}

function unsubscribedFrame(channel: string): string {
  return `[{"${Frame.UNSUBSCRIBED}":{"channel":${JSON.stringify(channel)}}}]`;
}

/** What leaving a channel adds for its rules (the registry already forgot the membership). */
function left(hub: Hub, conn: SocketConnection, channel: string): void {
  const rule = hub.rules.rule(channel);
  if (rule.presence) {
    hub.presence.unwatch(conn, channel);
    hub.presence.leave(memberId(conn), channel);
  }
  if (conn.v1 !== null && (rule.history !== null || rule.presence)) conn.send(unsubscribedFrame(channel));
}

/** `conn` leaves `channel` (no-op when not in it). */
export function leaveChannel(hub: Hub, conn: SocketConnection, channel: string): void {
  if (!conn.channels.has(channel)) return;
  hub.channels.unsubscribe(conn, channel);
  left(hub, conn, channel);
}

/** Drops a run-time channel: everyone in it leaves. */
export function dropChannel(hub: Hub, channel: string): void {
  for (const conn of hub.channels.drop(channel)) left(hub, conn, channel);
}

/**
 * `{"$recover": {"Public": {"epoch": "e1", "offset": 57}}}` from a client that saw a gap: per
 * history channel it is in, a `$subscribed` frame (recovering) with what it missed. The
 * connection stops being live in that channel until the recovery is sent (paced by its socket,
 * main/catch-up.ts), so the items after the recovered ones come once, in order.
 */
export function recover(hub: Hub, conn: SocketConnection, text: string): void {
  let request: unknown;
  try {
    request = (JSON.parse(text) as Record<string, unknown>)[Frame.RECOVER];
  } catch {
    return;
  }
  if (typeof request !== 'object' || request === null) return;
  for (const [channel, value] of Object.entries(request)) {
    const position = positionOf(value);
    if (position === undefined || !conn.channels.has(channel) || conn.catchUp?.has(channel) || hub.rules.rule(channel).history === null) continue;
    hub.channels.pause(conn, channel);
    if (startRecovery(hub, conn, channel, position)) hub.channels.goLive(conn, channel);
  }
  pump(hub, conn);
}

/**
 * The socket closed (before the registry forgets its channels): its session keeps them for a
 * resume (its presence memberships end when the session does); without one, its presence
 * memberships end now.
 */
export function connectionClosed(hub: Hub, conn: SocketConnection, code: number): void {
  if (conn.session !== null) {
    hub.sessions.closed(conn, code === 1000 || code === 1001);
    return;
  }
  for (const channel of conn.channels) if (hub.rules.rule(channel).presence) hub.presence.leave(conn.id, channel);
}

/** Restores a resumed session's channels on its new connection (recovering from the positions it sent). */
export function restoreChannels(hub: Hub, conn: SocketConnection, channels: readonly string[]): void {
  for (const channel of channels) joinChannel(hub, conn, channel);
}

export type { ChannelPositionRef };
