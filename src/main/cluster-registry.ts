/**
 * @module main/cluster-registry
 * The operations side of a cluster node (docs/cluster.md, "Operations"): the cluster's settings,
 * the node registry with its heartbeats, the lease of the node that runs the cluster's single
 * duties (interval tasks, publishing a snapshot, trimming the commit stream), and the trim itself;
 * also what the commit and fan-out read loops share of reading a stream (entry, field, limits).
 *
 * Redis keys (besides the two streams of main/cluster.ts):
 * - `lexicons:config` (hash): cluster-wide settings every node reads, seeded by the first node
 *   that starts (`HSETNX`, from env `LEXICONS_CLUSTER_WINDOW` / `LEXICONS_CLUSTER_GONE_SECONDS`):
 *   `window` (the conflict window, in records: it must be the same on every node, which is why it
 *   lives here), `goneSeconds` (a node without a heartbeat for that long counts as gone) and
 *   `fanoutPartitions` (env `LEXICONS_CLUSTER_FANOUT_PARTITIONS`: main/cluster-fanout.ts).
 * - `lexicons:nodes` (hash): node id -> JSON {@link NodeEntry}, written by each node every
 *   {@link HEARTBEAT_MS}.
 * - `lexicons:lease` (string, PX {@link LEASE_MS}): the id of the node holding the lease.
 */
import type { Redis } from 'ioredis';
import { CONFLICT_WINDOW } from '../storage/cluster-record.js';
import type { FanoutView } from './cluster-fanout.js';

export const CONFIG_KEY = 'lexicons:config';
export const NODES_KEY = 'lexicons:nodes';
export const LEASE_KEY = 'lexicons:lease';
/** Time between two heartbeats of a node (entry, lease renewal, view, trim). */
export const HEARTBEAT_MS = 2000;
/** A lease not renewed for this long passes to another node. */
export const LEASE_MS = 10_000;
const DEFAULT_GONE_SECONDS = 60;
/**
 * Fan-out partitions (docs/cluster.md, "Channels across nodes"): enough that a node with
 * subscribers in a few channels reads a small share of the publications, few enough that one
 * XREAD over all of them stays cheap for a node with subscribers everywhere.
 */
const DEFAULT_FANOUT_PARTITIONS = 16;
/** At most this many fan-out partitions (one XREAD names every partition a node reads). */
const MAX_FANOUT_PARTITIONS = 1024;

/** Entries per stream one XREAD returns at most (the commit stream and the fan-out streams). */
export const READ_COUNT = 1000;
/** How long one XREAD blocks (a read loop checks for stop, or a changed stream set, between reads). */
export const BLOCK_MS = 2000;
/** How long a stop waits for a read loop and the deliveries in progress. */
export const STOP_WAIT_MS = 1000;

/** A stream entry as ioredis returns it, and an XREAD reply. */
export type Entry = [id: string, fields: string[]];
export type StreamReply = Array<[stream: string, entries: Entry[]]> | null;

/** The value of field `name` of a stream entry ('' when absent). */
export function field(fields: readonly string[], name: string): string {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
  return '';
}

/** Settings every node of a cluster shares (`lexicons:config`). */
export interface ClusterSettings {
  /** Conflict window in records (storage/cluster-record.ts), also the trim's margin. */
  readonly window: number;
  /** A node without a heartbeat for this long counts as gone (it no longer holds the trim). */
  readonly goneMs: number;
  /** The number of fan-out streams (main/cluster-fanout.ts): a channel's partition must be the same on every node. */
  readonly fanoutPartitions: number;
}

/**
 * A node's phase: `catching-up` (reading the stream before it listens), `live`, `behind` (the
 * stream was trimmed past it: {@link StreamGap}; it stopped applying and refuses commits),
 * `stopped` (a graceful stop).
 */
export type NodePhase = 'catching-up' | 'live' | 'behind' | 'stopped';

/** A node's entry in `lexicons:nodes`. */
export interface NodeEntry {
  readonly phase: NodePhase;
  /** The last commit record the node applied. */
  readonly applied: number;
  /** The last commit record its latest local snapshot holds (what it restarts from at worst). */
  readonly snapshotted: number;
  /** The node's clock (ms) at its last heartbeat. */
  readonly heartbeat: number;
}

/** A node as a cluster view shows it. */
export interface NodeView extends NodeEntry {
  readonly node: string;
  readonly gone: boolean;
}

function positive(text: string | undefined, fallback: number): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** The cluster's settings, seeded from this process's environment if no node set them yet. */
export async function clusterSettings(redis: Redis, env: NodeJS.ProcessEnv = process.env): Promise<ClusterSettings> {
  await redis.hsetnx(CONFIG_KEY, 'window', String(positive(env.LEXICONS_CLUSTER_WINDOW, CONFLICT_WINDOW)));
  await redis.hsetnx(CONFIG_KEY, 'goneSeconds', String(positive(env.LEXICONS_CLUSTER_GONE_SECONDS, DEFAULT_GONE_SECONDS)));
  await redis.hsetnx(CONFIG_KEY, 'fanoutPartitions', String(Math.min(MAX_FANOUT_PARTITIONS, positive(env.LEXICONS_CLUSTER_FANOUT_PARTITIONS, DEFAULT_FANOUT_PARTITIONS))));
  const config = await redis.hgetall(CONFIG_KEY);
  return {
    window: positive(config.window, CONFLICT_WINDOW),
    goneMs: positive(config.goneSeconds, DEFAULT_GONE_SECONDS) * 1000,
    fanoutPartitions: Math.min(MAX_FANOUT_PARTITIONS, positive(config.fanoutPartitions, DEFAULT_FANOUT_PARTITIONS)),
  };
}

/** Takes the lease if it is free, renews it if this node holds it; 1 when this node holds it. */
const LEASE_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;

/** Gives the lease up if this node holds it (a graceful stop: another node takes over at once). */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** Whether this node holds the lease after taking or renewing it. */
export async function holdLease(redis: Redis, nodeId: string): Promise<boolean> {
  return (await redis.eval(LEASE_SCRIPT, 1, LEASE_KEY, nodeId, String(LEASE_MS))) === 1;
}

export async function releaseLease(redis: Redis, nodeId: string): Promise<void> {
  await redis.eval(RELEASE_SCRIPT, 1, LEASE_KEY, nodeId);
}

/** Every node's entry, `gone` when its heartbeat is older than `goneMs` (by this node's clock). */
export async function readNodes(redis: Redis, goneMs: number, now = Date.now()): Promise<NodeView[]> {
  const all = await redis.hgetall(NODES_KEY);
  const nodes: NodeView[] = [];
  for (const [node, text] of Object.entries(all)) {
    let entry: NodeEntry;
    try {
      entry = JSON.parse(text) as NodeEntry;
    } catch {
      continue; // not written by lexicons: ignored
    }
    nodes.push({ node, ...entry, gone: now - entry.heartbeat > goneMs });
  }
  return nodes.sort((a, b) => a.node.localeCompare(b.node));
}

/**
 * The first commit record the stream must keep: the trim never goes below what a node that
 * restarts (from its own snapshot) or rejoins (from the published one) reads again, the records
 * after its position and the conflict window before it. Every node that is not gone holds it,
 * also one that stopped gracefully or is down but not yet gone; not one that is `behind` (the
 * stream was trimmed past it already: it rejoins from the published snapshot). 0: nothing to trim.
 */
export function keepFrom(nodes: readonly NodeView[], published: number, window: number): number {
  let low = published;
  for (const n of nodes) if (!n.gone && n.phase !== 'behind') low = Math.min(low, n.snapshotted);
  return Math.max(0, low - window);
}

/** What `/health` shows of the cluster (docs/cluster.md, "Operations"). */
export interface ClusterView {
  readonly node: string;
  readonly phase: NodePhase;
  /** The last commit record this node applied. */
  readonly applied: number;
  /** The stream's last record at the last heartbeat, and how far behind it this node is. */
  readonly last: number;
  readonly lag: number;
  /** The stream's first record kept (it is trimmed below), the published snapshot's record. */
  readonly first: number;
  readonly published: number;
  /** Whether this node holds the lease (runs the interval tasks, publishes, trims). */
  readonly leader: boolean;
  readonly nodes: readonly NodeView[];
  /** The fan-out partitions this node reads (main/cluster-fanout.ts). */
  readonly fanout?: FanoutView;
}

/**
 * The commit stream no longer holds the record this node needs next (it was trimmed past the
 * node: the node counted as gone while it was not). Its folder must take the published snapshot.
 */
export class StreamGap extends Error {
  constructor(applied: number, next: number) {
    super(`cluster: the commit stream was trimmed past this node (it applied record ${applied}, the stream goes on at ${next}): restart the node, it rejoins from the published snapshot`);
  }
}
