/**
 * @module main/catch-up
 * Sending a recovery (main/recovery.ts) to a lexicons.v1 connection at the pace its socket takes,
 * then switching it to the live stream, with no gap and no duplicate at the seam.
 *
 * WHY PACED
 *
 * A recovery may hold up to `limits.maxRecoveredPublications` items: megabytes in one frame. uWS
 * refuses (and, for `disconnect` channels, closes) a socket whose buffered bytes are over
 * `limits.maxBackpressureBytes` at the next send, so one huge frame would get the connection it
 * was meant to repair dropped by the first live item after it. Instead the `$subscribed` head
 * goes with the items that fit in half the limit; while the rest is owed the connection is a
 * member of the channel (the registry knows it) but is *not live*: no native subscription, and
 * the registry's own fan-out skips it. Each `drain` sends the next items read from the store
 * (lock-free), up to the channel's delivered offset at that moment; once nothing is owed, in the
 * same synchronous step, the connection goes live: everything after that offset reaches it from
 * the live stream, everything up to it came from the store. The main thread is single-threaded,
 * so no publication can slip between the last store read and the subscription.
 *
 * If the store no longer holds the next owed item (trimmed, or the history was reset while the
 * connection caught up), a second `$subscribed` says `recovered: false` and the connection goes
 * live at once: the client refetches.
 */
import type { ChannelPositionRef, WorkerRecovery } from '../job-contract.js';
import { offText, withOffsets } from '../item-text.js';
import type { Hub } from './hub.js';
import { failedHead, recoveryOf } from './recovery.js';
import type { SocketConnection } from './socket-connection.js';

/** Items read from the store per step (each step also stays within the byte budget). */
const STEP_ITEMS = 256;

/** What a connection is still owed of one channel. */
export interface CatchUp {
  /** The next offset to send. */
  next: number;
  readonly epoch: string;
}

/** Bytes the connection may take now: half the backpressure limit, less what uWS holds. */
function room(conn: SocketConnection): number {
  if (conn.maxBackpressure === Infinity) return Infinity;
  return conn.maxBackpressure / 2 - (conn.socket?.getBufferedAmount() ?? Infinity);
}

/**
 * Sends `$subscribed` (and what fits of the missed items) for `channel`; returns true when
 * nothing more is owed (the caller subscribes the connection live), false when the rest follows
 * on drain ({@link pump}; the connection goes live then).
 */
export function startRecovery(hub: Hub, conn: SocketConnection, channel: string, position: ChannelPositionRef | undefined, worker?: WorkerRecovery): boolean {
  const recovery = recoveryOf(hub.delivery, channel, position, hub.settings.maxRecoveredPublications, worker);
  const budget = room(conn);
  let text = `[${recovery.head}`;
  let bytes = text.length;
  let sent = 0;
  for (const item of recovery.items) {
    if (bytes + item.length + 1 > budget) break;
    text += `,${item}`;
    bytes += item.length + 1;
    sent++;
  }
  conn.send(`${text}]`);
  if (sent === recovery.items.length) return true;
  (conn.catchUp ??= new Map()).set(channel, { next: recovery.first + sent, epoch: recovery.epoch });
  return false;
}

/** Sends what the connection is owed while its socket has room; channels caught up go live. */
export function pump(hub: Hub, conn: SocketConnection): void {
  const owed = conn.catchUp;
  if (owed === null) return;
  for (const [channel, c] of owed) {
    if (!conn.open) return;
    if (!step(hub, conn, channel, c)) return; // no room: the next drain goes on
    owed.delete(channel);
    hub.channels.goLive(conn, channel);
  }
  conn.catchUp = null;
}

/** Sends the next items of one channel; true once nothing more is owed (or it failed and was told). */
function step(hub: Hub, conn: SocketConnection, channel: string, c: CatchUp): boolean {
  const store = hub.delivery.store;
  for (;;) {
    const top = hub.delivery.position(channel).offset;
    if (c.next > top) return true;
    const budget = room(conn);
    if (budget <= 0) return false;
    const page = store?.history(channel, { after: c.next - 1, limit: Math.min(STEP_ITEMS, top - c.next + 1) }) ?? null;
    if (page === null || page.epoch !== c.epoch || page.items[0]?.offset !== c.next) {
      conn.send(`[${failedHead(channel, page?.epoch ?? c.epoch, top)}]`);
      return true;
    }
    let text = '';
    for (const item of page.items) {
      if (item.offset !== c.next || item.offset > top) break;
      const framed = withOffsets(item.text, offText(channel, item.offset));
      if (text !== '' && text.length + framed.length + 2 > budget) break;
      text += (text === '' ? '' : ',') + framed;
      c.next++;
    }
    conn.send(`[${text}]`);
  }
}
