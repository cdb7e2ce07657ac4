/**
 * @module main/recovery
 * The `$subscribed` frame a lexicons.v1 connection gets when it joins a history channel (any
 * Signal's `ws.subscribe`, a session resume) or asks to `$recover` a gap (docs/channels.md):
 *
 *   [{"$subscribed": {"channel": "Public", "epoch": "e1", "offset": D, "recovered": true, "recovering": true}}, <items after its position up to D>]
 *
 * D is the channel's delivered offset at that moment (main/history-delivery.ts): the connection is
 * subscribed natively right after, so items D+1.. reach it live, with no gap and no duplicate at
 * the seam. Recovery is all or nothing: when the position's epoch is not the channel's (an empty
 * epoch, given to joins before the channel's first publication, matches any), or more
 * than `limits.maxRecoveredPublications` items are missing, or the oldest missing one is no longer
 * retained, the frame says `recovered: false` and carries no item (the client refetches). A join
 * without a position says `recovering: false`.
 *
 * The items come first from what the joining call read at its snapshot in the worker (up to its
 * top H: workers/batch-context.ts readRecovery), then (H, D] from the store, read here without a
 * lock; items after D that the worker saw are dropped here (they come live). How much of it is
 * sent at once, and when the connection goes live, is main/catch-up.ts's business.
 */
import type { ChannelPositionRef, WorkerRecovery } from '../job-contract.js';
import { Frame } from '../wire.js';
import { offText, withOffsets } from '../item-text.js';
import type { HistoryDelivery } from './history-delivery.js';

function head(channel: string, epoch: string, offset: number, recovered: boolean, recovering: boolean): string {
  return `{"${Frame.SUBSCRIBED}":{"channel":${JSON.stringify(channel)},"epoch":${JSON.stringify(epoch)},"offset":${offset},"recovered":${recovered},"recovering":${recovering}}}`;
}

/** The items of (position, D] as texts with their offsets, or null when the recovery cannot be complete. */
function missedItems(delivery: HistoryDelivery, channel: string, epoch: string, position: ChannelPositionRef, offset: number, cap: number, worker: WorkerRecovery | undefined): string[] | null {
  const store = delivery.store;
  // Epoch '': the client joined before the channel's first publication (no epoch yet).
  if (store === null || (position.epoch !== epoch && position.epoch !== '') || position.offset > offset || offset - position.offset > cap) return null;
  const items: string[] = [];
  let next = position.offset + 1;
  if (worker !== undefined && worker.epoch === epoch) {
    for (const [o, text] of worker.items) {
      if (o !== next || o > offset) break;
      items.push(withOffsets(text, offText(channel, o)));
      next++;
    }
  }
  if (next > offset) return items;
  const page = store.history(channel, { after: next - 1, limit: offset - next + 1 });
  if (page === null || page.epoch !== epoch) return null;
  for (const item of page.items) {
    if (item.offset !== next) return null; // trimmed meanwhile: not complete
    items.push(withOffsets(item.text, offText(channel, item.offset)));
    next++;
  }
  return next === offset + 1 ? items : null;
}

/** What a join (or `$recover`) from a position gets: the `$subscribed` head and the missed items. */
export interface Recovery {
  readonly head: string;
  /** The missed items with their `$off` (empty unless recovered), from `first` on. */
  readonly items: string[];
  readonly first: number;
  readonly epoch: string;
}

/**
 * The recovery of a connection joining (or recovering) `channel` from `position` (undefined: not
 * recovering), with the worker's reads if any.
 */
export function recoveryOf(delivery: HistoryDelivery, channel: string, position: ChannelPositionRef | undefined, cap: number, worker?: WorkerRecovery): Recovery {
  const delivered = delivery.position(channel);
  // The store's epoch: a reset after the last delivered item already makes old positions stale.
  const epoch = delivery.store?.channelPosition(channel)?.epoch ?? delivered.epoch;
  const first = (position?.offset ?? delivered.offset) + 1;
  if (position === undefined) return { head: head(channel, epoch, delivered.offset, false, false), items: [], first, epoch };
  const items = missedItems(delivery, channel, epoch, position, delivered.offset, cap, worker);
  if (items === null) return { head: head(channel, epoch, delivered.offset, false, true), items: [], first, epoch };
  return { head: head(channel, epoch, delivered.offset, true, true), items, first, epoch };
}

/** The `$subscribed` head of a recovery that could not be completed (trimmed or reset while it was sent). */
export function failedHead(channel: string, epoch: string, offset: number): string {
  return head(channel, epoch, offset, false, true);
}

/** A position as sent by a client (`{"epoch": "e1", "offset": 42}`), or undefined when malformed. */
export function positionOf(value: unknown): ChannelPositionRef | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { epoch, offset } = value as Record<string, unknown>;
  if (typeof epoch !== 'string' || epoch.length > 64 || typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { epoch, offset };
}
