/**
 * @module client/channels
 * What the client remembers of channels (docs/channels.md): per history channel the last
 * (epoch, offset) it delivered, from `$subscribed` and each item's `$off`; presence members from
 * `$presence`. It decides, item by item, whether an item goes to the app:
 *
 * - offset = position + 1: delivered, the position moves on;
 * - offset <= position: a duplicate (a recovery overlapping what came live): skipped;
 * - offset > position + 1: a gap (a `drop` channel skipped items while the client was slow):
 *   skipped, and `$recover` is asked once from the position; the server answers with
 *   `$subscribed` (recovering) and the missing items, then the live ones.
 *
 * Positions go in `$connect` on every reconnect, so the server recovers what was missed when the
 * channel is joined again (a replayed call, or a resumed session).
 */
import { Frame } from '../wire.js';
import { isObject } from './util.js';

/** A channel position: the epoch of its history and the last offset delivered. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/** A presence member: its session id and the public `ws.meta` the server set. */
export interface Member {
  readonly id: string;
  readonly meta: unknown;
}

/** What `onChannel` handlers receive. */
export type ChannelEvent =
  /** Joined a history channel (or answered a `$recover`). `recovered`: the missed items follow, in order. */
  | { readonly type: 'subscribed'; readonly channel: string; readonly epoch: string; readonly offset: number; readonly recovered: boolean; readonly wasRecovering: boolean }
  /**
   * Items were missed and cannot be recovered (too many, too old, history reset): refetch the
   * channel's state. Also for a channel without history in a cluster whose publications may not
   * have reached this node (the server's `$missed`): then `epoch` is '' and `offset` 0.
   */
  | { readonly type: 'stale'; readonly channel: string; readonly epoch: string; readonly offset: number }
  /** Left a history or presence channel (the server's `$unsubscribed`). */
  | { readonly type: 'unsubscribed'; readonly channel: string }
  /** A presence channel's members changed (`members`: all of them now). */
  | { readonly type: 'presence'; readonly channel: string; readonly members: readonly Member[]; readonly joined: readonly Member[]; readonly left: readonly string[] };

type Obj = Record<string, unknown>;

export class Channels {
  readonly #positions = new Map<string, Position>();
  /** The position a `$recover` was asked from, per channel (asked once per position). */
  readonly #asked = new Map<string, number>();
  readonly #members = new Map<string, Map<string, Member>>();
  readonly #emit: (event: ChannelEvent) => void;
  readonly #send: (text: string) => void;

  constructor(emit: (event: ChannelEvent) => void, send: (text: string) => void) {
    this.#emit = emit;
    this.#send = send;
  }

  positions(): Record<string, Position> {
    return Object.fromEntries(this.#positions);
  }

  presence(channel: string): Member[] {
    return [...(this.#members.get(channel)?.values() ?? [])];
  }

  /** A reserved item (`$subscribed`, `$unsubscribed`, `$presence`, `$missed`): handled; false for any other name. */
  control(name: string, value: unknown): boolean {
    if (!isObject(value) || typeof value.channel !== 'string') return name === Frame.SUBSCRIBED || name === Frame.UNSUBSCRIBED || name === Frame.PRESENCE || name === Frame.MISSED;
    const channel = value.channel;
    if (name === Frame.SUBSCRIBED) this.#subscribed(channel, value);
    else if (name === Frame.MISSED) this.#emit({ type: 'stale', channel, epoch: '', offset: 0 });
    else if (name === Frame.UNSUBSCRIBED) {
      this.#positions.delete(channel);
      this.#asked.delete(channel);
      this.#members.delete(channel);
      this.#emit({ type: 'unsubscribed', channel });
    } else if (name === Frame.PRESENCE) this.#presence(channel, value);
    else return false;
    return true;
  }

  #subscribed(channel: string, s: Obj): void {
    const epoch = String(s.epoch ?? '');
    const offset = typeof s.offset === 'number' ? s.offset : 0;
    const recovered = s.recovered === true;
    const wasRecovering = s.recovering === true;
    this.#asked.delete(channel);
    // Recovered: the missed items follow and move the position; otherwise start from the server's.
    if (!recovered || !this.#positions.has(channel)) this.#positions.set(channel, { epoch, offset });
    else this.#positions.set(channel, { epoch, offset: this.#positions.get(channel)!.offset });
    this.#emit({ type: 'subscribed', channel, epoch, offset, recovered, wasRecovering });
    if (wasRecovering && !recovered) this.#emit({ type: 'stale', channel, epoch, offset });
  }

  /** Whether an item with this `$off` goes to the app (see the module comment); asks `$recover` on a gap. */
  accept(off: unknown): boolean {
    if (!isObject(off)) return true;
    let deliver = true;
    for (const channel in off) {
      const offset = off[channel];
      const at = this.#positions.get(channel);
      if (at === undefined || typeof offset !== 'number') continue; // a channel this client does not follow
      if (offset === at.offset + 1) this.#positions.set(channel, { epoch: at.epoch, offset });
      else {
        deliver = false;
        if (offset > at.offset + 1 && this.#asked.get(channel) !== at.offset) {
          this.#asked.set(channel, at.offset);
          this.#send(JSON.stringify({ [Frame.RECOVER]: { [channel]: at } }));
        }
      }
    }
    return deliver;
  }

  /** A new connection: recoveries asked on the old one will not be answered. */
  reset(): void {
    this.#asked.clear();
  }

  #presence(channel: string, p: Obj): void {
    let members = this.#members.get(channel);
    if (members === undefined || Array.isArray(p.members)) this.#members.set(channel, (members = new Map()));
    const joined: Member[] = [];
    const left: string[] = [];
    for (const m of [...(Array.isArray(p.members) ? p.members : []), ...(Array.isArray(p.join) ? p.join : [])]) {
      if (!isObject(m) || typeof m.id !== 'string') continue;
      const member = { id: m.id, meta: m.meta };
      if (!Array.isArray(p.members)) joined.push(member);
      members.set(m.id, member);
    }
    for (const id of Array.isArray(p.leave) ? p.leave : []) {
      if (typeof id === 'string' && members.delete(id)) left.push(id);
    }
    this.#emit({ type: 'presence', channel, members: [...members.values()], joined, left });
  }
}
