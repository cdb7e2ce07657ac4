/**
 * @module main/cluster
 * A node of a cluster on Redis (docs/cluster.md), on the main thread: the node's Redis
 * connections and its applier loop over the commit stream; the fan-out of publications to the
 * other nodes is main/cluster-fanout.ts.
 *
 * The Redis streams, whatever the number of channels:
 * - `lexicons:commits`: the global commit order. Every commit record (storage/cluster-record.ts) is
 *   appended with the explicit id `0-*`, so Redis numbers the records 1, 2, 3, ... (the sequence
 *   numbers the records' snapshots refer to). Every node reads it from its last applied record
 *   and decides each record the same way; the worker that sent a record waits for its node's
 *   decision ({@link ClusterNode.commit}).
 * - `lexicons:fanout:<k>` (K partitions, main/cluster-fanout.ts): the publications each node's
 *   effects sent to its own subscribers (the frames as sent, with their history offsets), in the
 *   order it sent them; the other nodes that read the channel's partition send them to theirs. A
 *   stream and not Pub/Sub: a node that lost its connection reads on from its last id after the
 *   reconnect (nothing in between is lost while the stream keeps it), and history-channel frames
 *   carry their offsets, so a gap is filled from the node's own replica.
 *
 * One connection writes (XADD; no offline queue: while Redis is unreachable a commit fails at
 * once with `IO` "cluster: ... unreachable"), one blocks in XREAD on the commit stream, one (the
 * fan-out's) on the fan-out partitions; each re-issues its XREAD from its last ids after every
 * error or reconnect (the Socket.IO adapter's known failure is a node that silently stops
 * receiving after a reconnect).
 *
 * Operations (main/cluster-registry.ts, main/cluster-snapshot.ts): a heartbeat every 2 s writes
 * the node's registry entry, takes or renews the lease, and (lease holder) trims the commit stream;
 * after each local snapshot the lease holder publishes it. A record missing from the stream where
 * the node reads on ({@link StreamGap}: trimmed past it) stops the node's applier (`behind`).
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { messageOf } from '../errors.js';
import { ClusterApplier, type CommitRecord } from '../storage/cluster-record.js';
import type { SharedStore } from '../storage/store.js';
import type { ArrowFileInfo } from '../storage/arrow-snapshot.js';
import type { ClusterCommitResult } from '../workers/control-plane.js';
import { applyEffects } from './effects.js';
import { FanoutLink } from './cluster-fanout.js';
import type { Hub } from './hub.js';
import type { LogFn } from './log.js';
import { BLOCK_MS, clusterSettings, field, HEARTBEAT_MS, holdLease, keepFrom, NODES_KEY, READ_COUNT, readNodes, releaseLease, STOP_WAIT_MS, StreamGap, type ClusterSettings, type ClusterView, type Entry, type NodePhase, type StreamReply } from './cluster-registry.js';
import { installSnapshot, moveAside, publishedSeq, publishSnapshot, REPLACED_DIR, snapshotSeq, type PublishedSnapshot } from './cluster-snapshot.js';

export const COMMIT_STREAM = 'lexicons:commits';
/** A commit settles within this time whatever happens: else it fails as not acknowledged (outcome unknown). */
const DECISION_TIMEOUT_MS = 10_000;
/** How long a commit whose XADD failed mid-way waits for its record to show up anyway. */
const UNKNOWN_OUTCOME_MS = 5000;

/** The sequence number of a commit stream id `0-<n>`. */
function seqOf(id: string): number {
  return Number(id.slice(id.indexOf('-') + 1));
}

export interface ClusterNodeOptions {
  redis: string;
  nodeId: string;
  log: LogFn;
}

export class ClusterNode {
  readonly nodeId: string;
  /** `catching-up` until the node has applied the stream as it was at start, then `live`. */
  phase: NodePhase = 'catching-up';
  readonly #writer: Redis;
  readonly #reader: Redis;
  #applier!: ClusterApplier;
  #settings!: ClusterSettings;
  readonly #options: ClusterNodeOptions;
  readonly #waiters = new Map<string, (result: ClusterCommitResult) => void>();
  /** Request ids are unique across restarts of a node id. */
  readonly #boot = randomUUID().slice(0, 8);
  #requests = 0;
  #fanout!: FanoutLink;
  #loop: Promise<void> = Promise.resolve();
  #readerDown = false;
  /** The last record this node's latest local snapshot holds (its position in the registry). */
  #snapshotted = 0;
  #heartbeat: NodeJS.Timeout | undefined;
  /** The heartbeat in flight (none starts while one runs: a slow Redis does not pile them up). */
  #beating: Promise<void> | null = null;
  #beatFailed = false;
  /** Whether this node holds the lease (main/cluster-registry.ts), as of its last heartbeat. */
  leader = false;
  #view: Omit<ClusterView, 'node' | 'phase' | 'applied' | 'lag' | 'leader'> = { last: 0, first: 0, published: 0, nodes: [] };

  private constructor(options: ClusterNodeOptions) {
    this.#options = options;
    this.nodeId = options.nodeId;
    const common = { connectionName: `lexicons-${options.nodeId}`, lazyConnect: true };
    this.#writer = new Redis(options.redis, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.#reader = new Redis(options.redis, { ...common, maxRetriesPerRequest: null });
    this.#writer.on('error', () => undefined); // reported by the reader's loop and the failing commits
    this.#reader.on('error', () => undefined);
  }

  /**
   * Connects (waiting for Redis however long it takes: start order does not matter) and reads the
   * cluster's settings. Then {@link behind} tells whether the node's data folder can catch up
   * from the stream, and {@link start} catches up.
   */
  static async connect(options: ClusterNodeOptions): Promise<ClusterNode> {
    const node = new ClusterNode(options);
    await node.#connect(node.#writer);
    await node.#connect(node.#reader);
    node.#settings = await clusterSettings(node.#writer);
    node.#fanout = new FanoutLink(options.redis, options.nodeId, node.#settings.fanoutPartitions, node.#writer, options.log);
    await node.#connect(node.#fanout.reader);
    return node;
  }

  /**
   * Whether `store` (its data folder just opened) is below what the commit stream keeps: the
   * records after its position and the conflict window before it. Then it must install the
   * published snapshot ({@link installSnapshot}) and open the folder again.
   */
  async behind(store: SharedStore): Promise<boolean> {
    const applied = new ClusterApplier(store, this.#settings.window).seq;
    const first = (await this.#reader.xrange(COMMIT_STREAM, '-', '+', 'COUNT', 1)) as Entry[];
    return first[0] !== undefined && seqOf(first[0][0]) > Math.max(1, applied - this.#settings.window);
  }

  /** Installs the published snapshot into the (closed) data folder `dir` (main/cluster-snapshot.ts). */
  installSnapshot(dir: string, keepAside = false): Promise<PublishedSnapshot> {
    return installSnapshot(this.#reader, dir, keepAside);
  }

  /**
   * Rebuilds the (closed) data folder `dir` from the cluster: its files move to
   * `replaced-by-rejoin/`, and the published snapshot is installed if the stream no longer starts
   * at record 1 (else the folder stays empty: the stream is read from its start; `snapshot` null).
   */
  async rebuild(dir: string): Promise<{ aside: string; snapshot: PublishedSnapshot | null }> {
    const first = (await this.#reader.xrange(COMMIT_STREAM, '-', '+', 'COUNT', 1)) as Entry[];
    const aside = resolve(dir, REPLACED_DIR);
    if (first[0] !== undefined && seqOf(first[0][0]) > 1) return { aside, snapshot: await installSnapshot(this.#reader, dir) };
    await moveAside(dir);
    return { aside, snapshot: null };
  }

  /**
   * Rebuilds the conflict window and applies the commit stream up to its end as found now
   * (catching up; the node's registry entry says `catching-up` meanwhile). The node reads on once
   * {@link attach}ed.
   */
  async start(store: SharedStore): Promise<void> {
    this.#applier = new ClusterApplier(store, this.#settings.window);
    this.#snapshotted = this.#applier.seq;
    clearInterval(this.#heartbeat); // a start again, after a gap and a snapshot installed
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
    this.#beat();
    await this.#catchUp();
  }

  /**
   * Goes live on `hub` (created after the catch-up, so that its history delivery starts at the
   * caught-up offsets): applies the stream as it grows, delivers the other nodes' publications to
   * this node's subscribers, and sends this node's to them.
   */
  attach(hub: Hub): void {
    const deliver = (effects: Parameters<typeof applyEffects>[1]): Promise<void> =>
      new Promise((resolve) => {
        if (applyEffects(hub, effects, resolve, 0, true)) resolve();
      });
    hub.fanout = (channels, text, history) => {
      if (this.phase === 'live') this.#fanout.forward(channels, text, history);
    };
    hub.channels.onMembers = (channel, present) => this.#fanout.watch(channel, present);
    for (const [channel, size] of Object.entries(hub.channels.sizes())) if (size > 0) this.#fanout.watch(channel, true);
    // A partition newly read: history offsets committed before its first frame came are filled from the replica.
    this.#fanout.start(deliver, () => hub.delivery.suspect(), hub.metrics, (channel) => hub.channels.rules.historyPolicy(channel) !== null);
    this.phase = 'live';
    this.#loop = this.#readLoop();
    this.#beat();
  }

  /**
   * A heartbeat (every {@link HEARTBEAT_MS}; one at a time): this node's registry entry, the
   * lease (taken or renewed while live), the cluster view, and, by the lease holder, the trim of
   * the commit stream below what every node that is not gone may read again.
   */
  #beat(): void {
    if (this.#beating !== null || this.phase === 'stopped') return;
    this.#beating = (async () => {
      const w = this.#writer;
      const { window, goneMs } = this.#settings;
      try {
        await w.hset(NODES_KEY, this.nodeId, JSON.stringify({ phase: this.phase, applied: this.#applier.seq, snapshotted: this.#snapshotted, heartbeat: Date.now() }));
        this.leader = this.phase === 'live' && (await holdLease(w, this.nodeId));
        const [nodes, published, first, last] = await Promise.all([readNodes(w, goneMs), publishedSeq(w), w.xrange(COMMIT_STREAM, '-', '+', 'COUNT', 1), w.xrevrange(COMMIT_STREAM, '+', '-', 'COUNT', 1)]);
        const firstSeq = first[0] === undefined ? 0 : seqOf(first[0][0]);
        this.#view = { last: last[0] === undefined ? 0 : seqOf(last[0][0]), first: firstSeq, published, nodes };
        const keep = keepFrom(nodes, published, window);
        if (this.leader && keep > firstSeq) {
          const trimmed = await w.xtrim(COMMIT_STREAM, 'MINID', `0-${keep}`);
          this.#options.log('CLUSTER', { node: this.nodeId, message: 'trimmed the commit stream', keepFrom: keep, trimmed });
        }
        this.#beatFailed = false;
      } catch (err) {
        if (!this.#beatFailed) this.#options.log('ERROR', { message: `cluster: heartbeat failed (retrying every ${HEARTBEAT_MS} ms): ${messageOf(err)}` });
        this.#beatFailed = true;
        this.leader = false;
      }
    })().finally(() => (this.#beating = null));
  }

  /**
   * After a local snapshot of `dir`: the node's registry position moves to the record it holds,
   * and the lease holder publishes it (main/cluster-snapshot.ts). Never throws (logged).
   */
  async snapshotted(dir: string, snapshot: { commitId: number; tables: Readonly<Record<string, ArrowFileInfo>> }): Promise<void> {
    try {
      const seq = await snapshotSeq(dir);
      this.#snapshotted = seq;
      if (this.leader && this.phase === 'live' && (await publishSnapshot(this.#writer, this.nodeId, dir, snapshot, seq))) {
        this.#options.log('CLUSTER', { node: this.nodeId, message: 'published the snapshot', seq });
      }
    } catch (err) {
      this.#options.log('ERROR', { message: `cluster: publishing the snapshot failed (the next one is tried): ${messageOf(err)}` });
    }
  }

  /**
   * Takes the lease now if it is free (or renews it), for the startup tasks (they run on the
   * node that holds it as it starts: docs/cluster.md). False when another node holds it, or Redis
   * did not answer (logged).
   */
  async takeLease(): Promise<boolean> {
    try {
      this.leader = this.phase === 'live' && (await holdLease(this.#writer, this.nodeId));
    } catch (err) {
      this.#options.log('ERROR', { message: `cluster: taking the lease for the startup tasks failed (they are skipped on this node): ${messageOf(err)}` });
      this.leader = false;
    }
    return this.leader;
  }

  /** The cluster as this node saw it at its last heartbeat (`/health`). */
  view(): ClusterView {
    const applied = this.#applier?.seq ?? 0;
    return { node: this.nodeId, phase: this.phase, applied, lag: Math.max(0, this.#view.last - applied), leader: this.leader, ...this.#view, fanout: this.#fanout.view() };
  }

  async #connect(redis: Redis): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await redis.connect();
        return;
      } catch (err) {
        if (attempt === 0) this.#options.log('ERROR', { message: `cluster: cannot reach Redis yet (retrying): ${messageOf(err)}` });
        redis.disconnect();
        await sleep(Math.min(200 * 2 ** attempt, 2000));
      }
    }
  }

  async #catchUp(): Promise<void> {
    const r = this.#reader;
    const started = Date.now();
    const applied = this.#applier.seq;
    // The window's stamps: the records a record after `applied` may conflict with.
    let from = Math.max(1, applied - this.#settings.window);
    while (from <= applied) {
      const entries = (await r.xrange(COMMIT_STREAM, `0-${from}`, `0-${applied}`, 'COUNT', READ_COUNT)) as Entry[];
      if (entries.length === 0) break;
      if (seqOf(entries[0]![0]) !== from) throw new StreamGap(applied, seqOf(entries[0]![0]));
      for (const [id, fields] of entries) this.#applier.remember(seqOf(id), JSON.parse(field(fields, 'r')) as CommitRecord);
      from = seqOf(entries[entries.length - 1]![0]) + 1;
    }
    const end = (await r.xrevrange(COMMIT_STREAM, '+', '-', 'COUNT', 1)) as Entry[];
    const target = end[0] === undefined ? 0 : seqOf(end[0][0]);
    while (this.#applier.seq < target) {
      const entries = (await r.xrange(COMMIT_STREAM, `(0-${this.#applier.seq}`, '+', 'COUNT', READ_COUNT)) as Entry[];
      if (entries.length === 0) break;
      this.#applyCommits(entries);
    }
    this.#options.log('START', { cluster: this.nodeId, caughtUp: this.#applier.seq, applied: this.#applier.seq - applied, ms: Date.now() - started });
  }

  /** Reads the commit stream until stopped; any error (Redis gone, restarted) re-reads from the last id. */
  async #readLoop(): Promise<void> {
    let failures = 0;
    while (this.phase === 'live') {
      try {
        const reply = (await this.#reader.xread('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', COMMIT_STREAM, `0-${this.#applier.seq}`)) as StreamReply;
        if (this.#readerDown) this.#options.log('START', { cluster: this.nodeId, message: 'cluster: Redis reachable again; reading on', from: this.#applier.seq });
        this.#readerDown = false;
        failures = 0;
        for (const [, entries] of reply ?? []) this.#applyCommits(entries);
      } catch (err) {
        if (this.phase !== 'live') return;
        if (err instanceof StreamGap) {
          this.#options.log('ERROR', { message: err.message });
          this.phase = 'behind';
          for (const done of [...this.#waiters.values()]) done({ ok: false, reason: 'unavailable', message: `${err.message}; the write was not acknowledged` });
          return;
        }
        if (!this.#readerDown) this.#options.log('ERROR', { message: `cluster: reading the streams failed (retrying from record ${this.#applier.seq}): ${messageOf(err)}` });
        this.#readerDown = true;
        await sleep(Math.min(100 * 2 ** failures++, 2000));
      }
    }
  }

  #applyCommits(entries: readonly Entry[]): void {
    for (const [id, fields] of entries) {
      const g = seqOf(id);
      if (g <= this.#applier.seq) continue;
      if (g !== this.#applier.seq + 1) throw new StreamGap(this.#applier.seq, g);
      // A throw (this node's log refused the append) stops here: the read loop retries from `g`.
      const result = this.#applier.apply(g, JSON.parse(field(fields, 'r')) as CommitRecord);
      if (field(fields, 'n') === this.nodeId) this.#waiters.get(field(fields, 'q'))?.(result);
    }
  }

  /** Appends a worker's commit record and resolves with this node's decision on it. */
  commit(record: string): Promise<ClusterCommitResult> {
    const rid = `${this.#boot}:${++this.#requests}`;
    return new Promise<ClusterCommitResult>((resolve) => {
      const done = (result: ClusterCommitResult): void => {
        clearTimeout(timer);
        this.#waiters.delete(rid);
        resolve(result);
      };
      // Every commit settles: a decision that does not come (a lost reply, a stalled read) fails it.
      const timer = setTimeout(() => {
        this.#options.log('ERROR', { message: `cluster: no decision on commit ${rid} within ${DECISION_TIMEOUT_MS} ms (applied up to record ${this.#applier.seq})` });
        done({ ok: false, reason: 'unavailable', message: `cluster: no decision within ${DECISION_TIMEOUT_MS} ms (Redis unreachable or slow); the write was not acknowledged and may still be applied` });
      }, DECISION_TIMEOUT_MS);
      timer.unref();
      this.#waiters.set(rid, done);
      const unreachable = (err: unknown): ClusterCommitResult => ({ ok: false, reason: 'unavailable', message: `cluster: the commit stream is unreachable (Redis: ${messageOf(err)}); the write was not acknowledged` });
      if (this.phase !== 'live') return done(unreachable(new Error(this.phase === 'behind' ? 'this node fell behind the trimmed stream (restart it)' : 'the node is stopping')));
      this.#writer.xadd(COMMIT_STREAM, '0-*', 'n', this.nodeId, 'q', rid, 'r', record).catch((err: unknown) => {
        // Not sent (no connection): fail now. Sent and the connection dropped: it may be in the
        // stream; wait a little for its decision before giving up.
        if (messageOf(err).includes('enableOfflineQueue')) return done(unreachable(new Error('not connected')));
        setTimeout(() => this.#waiters.get(rid)?.(unreachable(err)), UNKNOWN_OUTCOME_MS).unref();
      });
    });
  }

  /** The last commit record applied (or refused) by this node. */
  get applied(): number {
    return this.#applier.seq;
  }

  /** Stops reading, fails the commits still waiting, closes both connections. Idempotent. */
  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    clearInterval(this.#heartbeat);
    // The last entry says `stopped` (the node still holds the trim until gone); the lease passes on at once.
    const farewell = async (): Promise<void> => {
      await this.#beating;
      if (this.#applier === undefined || this.#writer.status !== 'ready') return;
      await this.#writer.hset(NODES_KEY, this.nodeId, JSON.stringify({ phase: 'stopped', applied: this.#applier.seq, snapshotted: this.#snapshotted, heartbeat: Date.now() }));
      await releaseLease(this.#writer, this.nodeId); // only if this node holds it
    };
    await Promise.race([farewell().catch(() => undefined), sleep(STOP_WAIT_MS)]);
    this.leader = false;
    for (const done of [...this.#waiters.values()]) done({ ok: false, reason: 'unavailable', message: 'cluster: the node is stopping; the write was not acknowledged' });
    this.#reader.disconnect();
    // An XREAD queued while Redis is away may never settle after disconnect(): bounded waits.
    await Promise.all([Promise.race([this.#loop, sleep(STOP_WAIT_MS)]), this.#fanout?.stop()]);
    await this.#writer.quit().catch(() => this.#writer.disconnect());
  }
}

