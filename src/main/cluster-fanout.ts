/**
 * @module main/cluster-fanout
 * The fan-out of publications between the nodes of a cluster (docs/cluster.md, "Channels across
 * nodes"), on its own Redis connection.
 *
 * K streams `lexicons:fanout:<k>` (K: `fanoutPartitions` in `lexicons:config`, the same on every
 * node), k = {@link partitionOf} the channel name. A publication a node delivered to its own
 * subscribers is appended to each partition its channels touch, with that partition's channels
 * (and their history ranges) only: a channel always maps to one stream, so its publications keep
 * their order. A node reads only the partitions in which it has at least one local subscriber
 * ({@link FanoutLink.watch}, called by the channel registry when a channel gets its first local
 * member or loses its last): a node without a subscriber in a partition never receives its frames.
 *
 * A partition newly read starts at its current end (its last id, read before the next XREAD).
 * The reader blocks in XREAD on the partitions it reads; a new partition must not wait out the
 * block, so the writer connection sends `CLIENT UNBLOCK <reader id>` (the XREAD returns at once,
 * empty, and is re-issued with the new set). A partition dropped needs no unblock: its entries
 * are ignored until the next XREAD leaves it out.
 *
 * A connection in several channels of one publication whose channels fall in several partitions
 * gets it once: each partition's entry names (`o`) the publication's channels of the partitions
 * before it, and a receiving node leaves out members of those (they get it from the lower one).
 *
 * Nothing is lost silently. History channels carry offsets (a hole is filled from the replica).
 * For channels without history: entries are numbered (`XADD key 0-*`: ids 0-1, 0-2, ...), so a
 * reader that finds a number skipped (entries trimmed while it was away) tells its local members
 * of the partition's channels without history; and a publication this node could not append
 * (Redis unreachable, or an error reply) leaves a gap entry (`g`) naming its channels once Redis
 * takes writes again, whose readers tell their members. Both tell with a `$missed` item
 * (`[{"$missed": {"channel": "Lobby"}}]`; the client library's `stale` event): refetch what
 * the channel shows.
 */
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf } from '../errors.js';
import type { Effect, HistoryRange } from '../job-contract.js';
import { Frame } from '../wire.js';
import { BLOCK_MS, field, READ_COUNT, STOP_WAIT_MS, type Entry, type StreamReply } from './cluster-registry.js';
import type { LogFn } from './log.js';
import type { Metrics } from './metrics.js';

export const FANOUT_PREFIX = 'lexicons:fanout:';
/** Approximate length each fan-out stream is trimmed to (a node away longer misses older frames). */
const FANOUT_MAXLEN = 100_000;

/**
 * The fan-out partition of a channel: FNV-1a (32 bits) over the name's UTF-16 code units, mod
 * `partitions`. Stable across processes and versions (every node must compute the same).
 */
export function partitionOf(channel: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) h = Math.imul(h ^ channel.charCodeAt(i), 0x01000193);
  return (h >>> 0) % partitions;
}

/** Deletes each fan-out stream (KEYS) whose last id is not numbered (`0-<n>`): made by a version before numbered entries. */
const DROP_LEGACY = `local dropped = 0
for _, key in ipairs(KEYS) do
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  if last and string.sub(last[1], 1, 2) ~= '0-' then redis.call('DEL', key) dropped = dropped + 1 end
end
return dropped`;

/** The number of a fan-out entry (ids `0-<n>`, numbered by Redis: `XADD key 0-*`). */
function entryNumber(id: string): number {
  return Number(id.slice(id.indexOf('-') + 1));
}

/** What `/health` shows of the fan-out (`cluster.fanout`). */
export interface FanoutView {
  readonly partitions: number;
  /** The partitions this node reads (it has a local subscriber in each, and its start in the stream is known). */
  readonly reading: number[];
  /** Frames of other nodes this node received since start (`lexicons_cluster_fanout_frames_total`). */
  readonly received: number;
}

export class FanoutLink {
  readonly #nodeId: string;
  readonly #partitions: number;
  readonly #log: LogFn;
  readonly #writer: Redis;
  readonly #reader: Redis;
  /** Local channels with members, per partition. */
  readonly #watched = new Map<number, Set<string>>();
  /** Partitions read, with the last id read (null: start at its current end, resolved before the next XREAD). */
  readonly #reading = new Map<number, string | null>();
  #readerId: number | null = null;
  #blocked = false;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #wake: () => void = () => undefined;
  #deliver: (effects: Effect[]) => Promise<void> = () => Promise.resolve();
  /** Called when a partition is newly read (history channels fill what came before from the replica). */
  #onRead: () => void = () => undefined;
  #down = false;
  #metrics: Metrics | null = null;
  /** Whether a channel has history (its frames carry offsets; nothing to tell its members of a gap). */
  #hasHistory: (channel: string) => boolean = () => false;
  /** Channels without history whose publications this node could not append, per partition: a gap entry names them once Redis takes writes. */
  readonly #unsent = new Map<number, Set<string>>();

  /** `writer`: the node's writer connection (XADD, CLIENT UNBLOCK); the reader is this link's own. */
  constructor(redisUrl: string, nodeId: string, partitions: number, writer: Redis, log: LogFn) {
    this.#nodeId = nodeId;
    this.#partitions = partitions;
    this.#writer = writer;
    this.#log = log;
    this.#reader = new Redis(redisUrl, { connectionName: `lexicons-${nodeId}-fanout`, lazyConnect: true, maxRetriesPerRequest: null });
    this.#reader.on('error', () => undefined); // reported by the read loop
    this.#reader.on('close', () => (this.#readerId = null));
    writer.on('ready', () => this.#sendGaps());
  }

  get reader(): Redis {
    return this.#reader;
  }

  /**
   * Starts reading; `deliver` applies other nodes' publications, in order; `onRead` see
   * {@link #onRead}; `hasHistory`: whether a channel has history (the channel rules).
   */
  start(deliver: (effects: Effect[]) => Promise<void>, onRead: () => void, metrics: Metrics, hasHistory: (channel: string) => boolean): void {
    this.#deliver = deliver;
    this.#hasHistory = hasHistory;
    this.#metrics = metrics;
    this.#onRead = onRead;
    this.#running = true;
    this.#loop = this.#readLoop();
  }

  /** `channel` got its first local member (`present`) or lost its last. */
  watch(channel: string, present: boolean): void {
    const k = partitionOf(channel, this.#partitions);
    let set = this.#watched.get(k);
    if (present) {
      if (set === undefined) this.#watched.set(k, (set = new Set()));
      set.add(channel);
      if (!this.#reading.has(k)) {
        this.#reading.set(k, null);
        this.#unblock();
      }
    } else if (set !== undefined) {
      set.delete(channel);
      if (set.size === 0) {
        this.#watched.delete(k);
        this.#reading.delete(k);
      }
    }
  }

  view(): FanoutView {
    // A partition counts once its start is known: every frame appended after that reaches this node.
    const reading = [...this.#reading].filter(([, id]) => id !== null).map(([k]) => k);
    return { partitions: this.#partitions, reading: reading.sort((a, b) => a - b), received: this.#metrics?.clusterFanoutFrames ?? 0 };
  }

  #unblock(): void {
    this.#wake();
    if (this.#blocked && this.#readerId !== null && this.#writer.status === 'ready') this.#writer.client('UNBLOCK', this.#readerId).catch(() => undefined);
  }

  async #readLoop(): Promise<void> {
    let failures = 0;
    let legacyChecked = false;
    while (this.#running) {
      try {
        if (!legacyChecked) {
          // Streams of a version before numbered entries (ids by time) would refuse `0-*`: removed (an upgrade stops every node first).
          const keys = Array.from({ length: this.#partitions }, (_, k) => FANOUT_PREFIX + k);
          await this.#reader.eval(DROP_LEGACY, keys.length, ...keys);
          legacyChecked = true;
        }
        if (this.#reading.size === 0) {
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        if (this.#readerId === null) this.#readerId = (await this.#reader.client('ID')) as number;
        let added = false;
        for (const [k, id] of this.#reading) {
          if (id !== null) continue;
          const last = (await this.#reader.xrevrange(FANOUT_PREFIX + k, '+', '-', 'COUNT', 1)) as Entry[];
          if (this.#reading.get(k) === null) this.#reading.set(k, last[0]?.[0] ?? '0-0');
          added = true;
        }
        if (added) this.#onRead();
        const keys = [...this.#reading.keys()];
        if (keys.length === 0) continue;
        this.#blocked = true;
        // BLOCK_MS: a changed partition set unblocks it earlier (CLIENT UNBLOCK, #unblock).
        const reply = (await this.#reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys.map((k) => FANOUT_PREFIX + k), ...keys.map((k) => this.#reading.get(k)!))) as StreamReply;
        this.#blocked = false;
        if (this.#down) this.#log('START', { cluster: this.#nodeId, message: 'cluster: Redis reachable again; fan-out reading on' });
        this.#down = false;
        failures = 0;
        for (const [stream, entries] of reply ?? []) this.#receive(Number(stream.slice(FANOUT_PREFIX.length)), entries);
      } catch (err) {
        this.#blocked = false;
        if (!this.#running) return;
        if (!this.#down) this.#log('ERROR', { message: `cluster: reading the fan-out streams failed (retrying from the last ids): ${messageOf(err)}` });
        this.#down = true;
        await sleep(Math.min(100 * 2 ** failures++, 2000));
      }
    }
  }

  #receive(k: number, entries: readonly Entry[]): void {
    if (!this.#reading.has(k) || entries.length === 0) return; // dropped meanwhile
    const effects: Effect[] = [];
    for (const [id, fields] of entries) {
      const last = this.#reading.get(k);
      if (last === null) return; // dropped and added again: starts at the end
      this.#reading.set(k, id);
      // Numbered entries: a number skipped was trimmed before this node read it.
      if (last !== undefined && entryNumber(id) !== entryNumber(last) + 1) effects.push(...this.#missed([...(this.#watched.get(k) ?? [])]));
      if (field(fields, 'n') === this.#nodeId) continue;
      this.#metrics!.clusterFanoutFrames++;
      if (field(fields, 'g') !== '') {
        effects.push(...this.#missed(JSON.parse(field(fields, 'c')) as string[]));
        continue;
      }
      const history = field(fields, 'h');
      const others = field(fields, 'o');
      effects.push({
        kind: 'publish',
        channels: JSON.parse(field(fields, 'c')) as string[],
        text: field(fields, 'b'),
        ...(history === '' ? {} : { history: JSON.parse(history) as HistoryRange[] }),
        ...(others === '' ? {} : { skip: JSON.parse(others) as string[] }),
      });
    }
    // Each on its own, in stream order: a history publication that must wait for an earlier offset
    // (main/history-delivery.ts) holds back only itself, never the entries after it. The stream
    // does not hold a channel's offsets in order: a node without a local member of the channel
    // forwards its publication at once, while the node that committed the offset before it may
    // still be waiting for its turn. Frames of channels without history never wait.
    for (const effect of effects) this.#deliver([effect]).catch((err: unknown) => this.#log('ERROR', { message: `cluster: delivering publications failed: ${messageOf(err)}` }));
  }

  /**
   * Sends a publication this node delivered to its own subscribers to the other nodes: one entry
   * per partition its channels touch. Not sent while Redis is unreachable (docs/cluster.md: the
   * frames of history channels are filled from the replica).
   */
  forward(channels: readonly string[], text: string | Uint8Array, ranges: readonly HistoryRange[] | undefined): void {
    if (this.#writer.status !== 'ready') {
      this.#notSent(channels);
      return;
    }
    const body = typeof text === 'string' ? text : Buffer.from(text);
    const parts = new Map<number, string[]>();
    for (const channel of channels) {
      const k = partitionOf(channel, this.#partitions);
      const list = parts.get(k);
      if (list === undefined) parts.set(k, [channel]);
      else list.push(channel);
    }
    const order = [...parts.keys()].sort((a, b) => a - b);
    const before: string[] = [];
    for (const k of order) {
      const list = parts.get(k)!;
      const own = ranges?.filter((r) => list.includes(r.channel));
      const fields = ['n', this.#nodeId, 'c', JSON.stringify(list), 'h', own === undefined || own.length === 0 ? '' : JSON.stringify(own), 'o', before.length === 0 ? '' : JSON.stringify(before), 'b', body];
      this.#writer.xadd(FANOUT_PREFIX + k, 'MAXLEN', '~', String(FANOUT_MAXLEN), '0-*', ...fields).then(
        () => this.#unsent.size > 0 && this.#sendGaps(),
        () => this.#notSent(list),
      );
      before.push(...list);
    }
  }

  /** `[{"$missed": {"channel"}}]` to this node's members of each channel without history. */
  #missed(channels: readonly string[]): Effect[] {
    return channels.filter((c) => !this.#hasHistory(c)).map((channel) => ({ kind: 'publish', channels: [channel], text: JSON.stringify([{ [Frame.MISSED]: { channel } }]) }));
  }

  /** A publication of `channels` did not reach the stream: its channels without history get a gap entry later. */
  #notSent(channels: readonly string[]): void {
    for (const channel of channels) {
      if (this.#hasHistory(channel)) continue; // its offsets show the hole; other nodes fill it from their replicas
      const k = partitionOf(channel, this.#partitions);
      let set = this.#unsent.get(k);
      if (set === undefined) this.#unsent.set(k, (set = new Set()));
      set.add(channel);
    }
  }

  /**
   * Appends a gap entry per partition for the channels whose publications were not sent (on the
   * writer's reconnect, and after the next append that succeeds); one that fails waits for the next.
   */
  #sendGaps(): void {
    for (const [k, set] of this.#unsent) {
      this.#unsent.delete(k);
      const list = [...set];
      this.#writer.xadd(FANOUT_PREFIX + k, 'MAXLEN', '~', String(FANOUT_MAXLEN), '0-*', 'n', this.#nodeId, 'c', JSON.stringify(list), 'g', '1').catch(() => this.#notSent(list));
    }
  }

  /** Stops reading and closes the reader (bounded wait for the loop). Idempotent. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#wake();
    this.#reader.disconnect();
    await Promise.race([this.#loop, sleep(STOP_WAIT_MS)]);
  }
}
