/**
 * @module main/history-delivery
 * Delivery of history-channel publications in offset order on the main thread.
 *
 * WHY A REORDER BUFFER
 *
 * Offsets are assigned at commit, in commit order (storage/history.ts), but the results of the
 * batches that committed them reach the main thread in whatever order their workers finish: the
 * batch that committed offset 17 of Public may come back after the one that committed 18. A
 * client gets each channel's items in offset order with no gap, so per channel this module keeps
 * `delivered` (the highest offset sent to the channel's subscribers) and lets a publication
 * through only when its first offset is `delivered + 1`; one that comes early makes its batch's
 * effect application wait (main/packed-applier.ts) until the channel catches up. No cycle is
 * possible: a waiting publication only ever waits for offsets committed before its own.
 *
 * A hole that is not filled within {@link HOLE_FILL_MS} (the worker died after its commit, so
 * its result never comes) is read from the store (lock-free on this thread) and delivered; a
 * result that arrives later for offsets already delivered sends nothing to the channel (its
 * caller still gets its reply). After a job failure, channels whose store top stays above
 * `delivered` with nothing waiting (the lost batch held the last publications) are filled the
 * same way.
 *
 * `delivered` starts at each channel's stored offset when the server starts (nobody was
 * subscribed to what came before), or 0 for a channel that never published.
 */
import type { HistoryRange } from '../job-contract.js';
import type { SharedStore } from '../storage/store.js';
import { CHANNEL_TABLE, hasHistory } from '../storage/history-tables.js';
import { offText, withOffsets } from '../item-text.js';
import type { LogFn } from './log.js';

/** A hole in a channel's offsets older than this is filled from the store. */
export const HOLE_FILL_MS = 1000;
/** How often holes are looked for. */
const TICK_MS = 250;
/** How long after a job failure channels are checked for publications whose result was lost. */
const SUSPECT_MS = 10_000;

interface Waiter {
  /** The first offset it needs next (`delivered + 1`). */
  readonly first: number;
  readonly since: number;
  readonly resume: () => void;
}

/** One history channel's delivery state. */
interface Line {
  delivered: number;
  epoch: string;
  /** Waiting publications, by first offset. */
  waiters: Waiter[];
  /** When `delivered` was seen below the store's top with nothing waiting (after a job failure). */
  stalledSince: number;
}

/** The channel's position as delivered: what a joining client starts from. */
export interface DeliveredPosition {
  epoch: string;
  offset: number;
}

export class HistoryDelivery {
  readonly #store: SharedStore | null;
  readonly #lines = new Map<string, Line>();
  /** Offsets and epochs stored when the server started. */
  readonly #initial = new Map<string, DeliveredPosition>();
  readonly #publish: (channel: string, text: string) => void;
  readonly #log: LogFn;
  #timer: ReturnType<typeof setInterval> | undefined;
  #suspectUntil = 0;
  /** Wake-ups queued while one is running (no recursion through resumed appliers). */
  readonly #wakeups: Array<() => void> = [];
  #waking = false;

  /** `store`: null when the app keeps no history. `publish`: sends a frame to a channel's subscribers. */
  constructor(store: SharedStore | null, publish: (channel: string, text: string) => void, log: LogFn) {
    this.#store = store !== null && hasHistory(store.schema) ? store : null;
    this.#publish = publish;
    this.#log = log;
    const s = this.#store;
    if (s === null) return;
    const txn = s.begin();
    try {
      for (const row of txn.db.query(CHANNEL_TABLE)) {
        const r = row as unknown as { pk: string; epoch: string; offset: number };
        this.#initial.set(r.pk, { epoch: r.epoch, offset: r.offset });
      }
    } finally {
      txn.abort();
    }
  }

  get store(): SharedStore | null {
    return this.#store;
  }

  #line(channel: string): Line {
    let line = this.#lines.get(channel);
    if (line === undefined) {
      const initial = this.#initial.get(channel);
      line = { delivered: initial?.offset ?? 0, epoch: initial?.epoch ?? '', waiters: [], stalledSince: 0 };
      this.#lines.set(channel, line);
    }
    return line;
  }

  /** What subscribers of `channel` have been sent: its epoch and delivered offset. */
  position(channel: string): DeliveredPosition {
    const line = this.#line(channel);
    if (line.epoch === '' && this.#store !== null) line.epoch = this.#store.channelPosition(channel)?.epoch ?? '';
    return { epoch: line.epoch, offset: line.delivered };
  }

  /** The first range that must wait (its first offset is beyond `delivered + 1`), or undefined: deliverable now. */
  blocking(ranges: readonly HistoryRange[]): HistoryRange | undefined {
    for (const range of ranges) if (range.first > this.#line(range.channel).delivered + 1) return range;
    return undefined;
  }

  /** Whether every offset of the range was delivered already (a hole filled from the store). */
  isDelivered(range: HistoryRange): boolean {
    return range.last <= this.#line(range.channel).delivered;
  }

  /** Makes `resume` run once `range.channel` delivered up to `range.first - 1`. */
  wait(range: HistoryRange, resume: () => void): void {
    const line = this.#line(range.channel);
    const waiter: Waiter = { first: range.first, since: Date.now(), resume };
    let i = line.waiters.length;
    while (i > 0 && line.waiters[i - 1]!.first > waiter.first) i--;
    line.waiters.splice(i, 0, waiter);
    this.#start();
  }

  /** The ranges were sent: each channel's delivered offset moves to its last; waiters that can go now resume. */
  advance(ranges: readonly HistoryRange[]): void {
    for (const range of ranges) {
      const line = this.#line(range.channel);
      if (range.last > line.delivered) {
        line.delivered = range.last;
        line.epoch = range.epoch;
        line.stalledSince = 0;
      }
      this.#wake(line);
    }
  }

  #wake(line: Line): void {
    while (line.waiters.length > 0 && line.waiters[0]!.first <= line.delivered + 1) this.#wakeups.push(line.waiters.shift()!.resume);
    if (this.#waking) return;
    this.#waking = true;
    try {
      for (let next = this.#wakeups.shift(); next !== undefined; next = this.#wakeups.shift()) next();
    } finally {
      this.#waking = false;
    }
  }

  /**
   * Cluster mode, a channel's first local member joins: this node may not have read the channel's
   * fan-out partition (main/cluster-fanout.ts), so `delivered` moves up to the replica's top (what
   * the member's recovery reads); offsets committed after that which the node's fan-out started
   * too late to receive are filled from the store ({@link suspect}).
   */
  resync(channel: string): void {
    const top = this.#store?.channelPosition(channel);
    if (top === undefined || top === null) return;
    const line = this.#line(channel);
    if (top.offset > line.delivered) {
      line.delivered = top.offset;
      line.epoch = top.epoch;
      line.stalledSince = 0;
      this.#wake(line);
    }
    this.suspect();
  }

  /** A job failed: its committed publications may never come back; look for stalled channels a while. */
  suspect(): void {
    if (this.#store === null) return;
    this.#suspectUntil = Date.now() + SUSPECT_MS;
    this.#start();
  }

  #start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  #tick(): void {
    const now = Date.now();
    let busy = now < this.#suspectUntil;
    for (const [channel, line] of this.#lines) {
      const head = line.waiters[0];
      if (head !== undefined) {
        busy = true;
        if (now - head.since >= HOLE_FILL_MS) this.#fill(channel, line, head.first - 1);
      } else if (now < this.#suspectUntil && this.#store !== null) {
        const top = this.#store.channelPosition(channel)?.offset ?? 0;
        if (top <= line.delivered) line.stalledSince = 0;
        else if (line.stalledSince === 0) line.stalledSince = now;
        else if (now - line.stalledSince >= HOLE_FILL_MS) this.#fill(channel, line, top);
      }
    }
    if (!busy) this.stop();
  }

  /** Delivers offsets `delivered + 1 .. upto` of a channel from the store. */
  #fill(channel: string, line: Line, upto: number): void {
    const store = this.#store;
    if (store === null || upto <= line.delivered) return;
    const from = line.delivered + 1;
    const page = store.history(channel, { after: line.delivered, limit: upto - line.delivered });
    if (page !== null && page.items.length > 0) {
      let text = '[';
      for (let i = 0; i < page.items.length; i++) {
        const item = page.items[i]!;
        text += (i > 0 ? ',' : '') + withOffsets(item.text, offText(channel, item.offset));
      }
      this.#publish(channel, `${text}]`);
    }
    this.#log('WORKER-ERROR', {
      message: `history: offsets ${from}..${upto} of channel [${channel}] delivered from the store (their batch result did not come within ${HOLE_FILL_MS} ms)`,
      channel,
      delivered: page?.items.length ?? 0,
    });
    this.advance([{ channel, epoch: page?.epoch ?? line.epoch, first: from, last: upto }]);
  }

  /** Read-only figures of a channel (channels.info()). */
  info(channel: string): { epoch: string; offset: number; waiting: number } | undefined {
    const line = this.#lines.get(channel);
    const initial = this.#initial.get(channel);
    if (line === undefined) return initial === undefined ? undefined : { ...initial, waiting: 0 };
    return { epoch: line.epoch, offset: line.delivered, waiting: line.waiters.length };
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
