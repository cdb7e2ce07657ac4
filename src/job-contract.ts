/**
 * @module job-contract
 * The contract between the main thread and the pool workers: what a job carries to a worker and
 * what its result carries back. Both sides import this module; every bit-packed value is written
 * and read by the functions here, never by hand.
 *
 * Vocabulary (one meaning each):
 * - **unit**: one piece of inbound work of one connection: a frame (Signal calls), a connection
 *   attempt (Headers, gate, onConnect) or a disconnection (onDisconnect).
 * - **batch**: the units of many connections run together in one job, as one transaction. A
 *   connection's units appear in the order they arrived, and it has at most one batch in flight.
 * - **job**: what one pool run executes: a batch, a Task, a server hook, or a refresh (the live
 *   queries of one connection). (A piscina "task" is a job here; "task" means only a user's Task.)
 * - **effect**: something a job asks the main thread to do after its commit (send, publish,
 *   subscribe, ...), applied in order.
 *
 * Why packed: piscina costs ~30 µs per run, so units are batched; and a structured clone of one
 * object per unit or per effect cost more than the calls themselves. A batch's units travel as an
 * Int32Array of heads plus flat lists; a batch's sends and publishes come back as an Int32Array of
 * op triples over one UTF-8 byte buffer. The encode/decode functions are small and monomorphic so
 * V8 inlines them on the hot path.
 */
import type { Json } from './components.js';
import type { LogStatus } from './server.js';
import type { LiveJob, LiveResult } from './live-job-contract.js';
import type { WrittenRows } from './storage/api.js';

// ---------------------------------------------------------------------------------------------
// Jobs: main → worker

/** A client's last seen position in a history channel (`$connect.positions`, `$recover`). */
export interface ChannelPositionRef {
  epoch: string;
  offset: number;
}

/** A connection as the main thread knows it when the batch is built (a worker's `ws` starts here). */
export interface ConnectionSnapshot {
  id: string;
  address: string;
  auth: Json | undefined;
  channels: string[];
  /** The connection speaks lexicons.v1 (its error items carry a `code`). */
  v1?: boolean;
  /** `ws.meta`, when set. */
  meta?: Json;
  /** Positions the client sent for history channels it has not joined yet (a join recovers from them). */
  positions?: Record<string, ChannelPositionRef>;
}

/** The offsets one publish frame carries in one history channel (contiguous, of one commit). */
export interface HistoryRange {
  channel: string;
  epoch: string;
  first: number;
  last: number;
}

/**
 * What the subscribing call read of a channel's history at its snapshot, for the client's
 * position: the items after it up to `top` (the channel's offset at that snapshot). The main
 * thread sends those up to its delivered offset and reads any rest itself (main/recovery.ts).
 */
export interface WorkerRecovery {
  epoch: string;
  top: number;
  oldest: number;
  /** `[offset, item text]`, oldest first. */
  items: Array<[number, string]>;
}

/** The outcome of a call with `$key`, kept by the session for replays (items untagged: the replay's `$id` is added). */
export interface KeyedOutcome {
  /** Index of the caller in the job's connections. */
  connection: number;
  key: string;
  items: string[];
}

/** Unit kinds (the low bits of a unit head). */
export const UNIT_FRAME = 0;
export const UNIT_CONNECT = 1;
export const UNIT_DISCONNECT = 2;
export type UnitKind = typeof UNIT_FRAME | typeof UNIT_CONNECT | typeof UNIT_DISCONNECT;

const UNIT_KIND_BITS = 2;
const UNIT_KIND_MASK = (1 << UNIT_KIND_BITS) - 1;

/** A unit as the main thread queues it for a connection. */
export type Unit =
  /** `keys`: the `$key`s of its calls registered with the connection's session (main/sessions.ts). */
  | { readonly kind: typeof UNIT_FRAME; readonly text: string; readonly keys?: readonly string[] }
  | { readonly kind: typeof UNIT_CONNECT; readonly headerData: Record<string, string> }
  | { readonly kind: typeof UNIT_DISCONNECT };

/** The head of a unit in {@link BatchJob.unitHeads}: the index of its connection in the job, and its kind. */
export function encodeUnitHead(connectionIndex: number, kind: UnitKind): number {
  return (connectionIndex << UNIT_KIND_BITS) | kind;
}

/** The index in {@link BatchJob.connections} of the connection a unit head belongs to. */
export function unitConnectionIndex(head: number): number {
  return head >> UNIT_KIND_BITS;
}

export function unitKind(head: number): UnitKind {
  return (head & UNIT_KIND_MASK) as UnitKind;
}

/**
 * A batch, packed: `unitHeads[i]` per unit ({@link encodeUnitHead}), the texts of the frame
 * units in unit order in `frameTexts`, the header data of the connect units in order in
 * `headerData`.
 */
export interface BatchJob {
  kind: 'batch';
  /** Progress slot (see workers/progress.ts). */
  slot: number;
  /** The pool's number of this run (cluster commit requests name it: workers/progress.ts CommitTicket). */
  jobId: number;
  connections: ConnectionSnapshot[];
  unitHeads: Int32Array;
  frameTexts: string[];
  headerData: Array<Record<string, string>>;
  /** Version of the run-time channel registry on the main thread (workers refresh on change). */
  channelsVersion: number;
}

export interface TaskJob {
  kind: 'task';
  slot: number;
  jobId: number;
  /** Task class name. */
  name: string;
  /** false: only compute the interval (`set()`), do not execute. */
  run: boolean;
}

/** Server hooks run as jobs; `ready` runs nothing: it proves a worker loaded the app (start-up check). */
export type HookName = 'onStart' | 'onShutdown' | 'ready';

export interface HookJob {
  kind: 'hook';
  slot: number;
  jobId: number;
  hook: HookName;
}

export type Job = BatchJob | TaskJob | HookJob | LiveJob;

/** A job before the pool gives it a progress slot and its number. */
export type JobInput = Job extends infer J ? (J extends Job ? Omit<J, 'slot' | 'jobId'> : never) : never;

/**
 * Packs the units of a batch. `owners[i]` is the index in `connections` of the connection of
 * `units[i]`.
 */
export function encodeBatch(
  connections: ConnectionSnapshot[],
  units: readonly Unit[],
  owners: readonly number[],
  channelsVersion: number,
): Omit<BatchJob, 'slot' | 'jobId'> {
  const n = units.length;
  const unitHeads = new Int32Array(n);
  const frameTexts: string[] = [];
  const headerData: Array<Record<string, string>> = [];
  for (let i = 0; i < n; i++) {
    const unit = units[i]!;
    unitHeads[i] = encodeUnitHead(owners[i]!, unit.kind);
    if (unit.kind === UNIT_FRAME) frameTexts.push(unit.text);
    else if (unit.kind === UNIT_CONNECT) headerData.push(unit.headerData);
  }
  return { kind: 'batch', connections, unitHeads, frameTexts, headerData, channelsVersion };
}

/** The units of a batch with their connection indexes (the readable inverse of {@link encodeBatch}). */
export function decodeBatch(job: Pick<BatchJob, 'unitHeads' | 'frameTexts' | 'headerData'>): Array<{ connectionIndex: number; unit: Unit }> {
  const out: Array<{ connectionIndex: number; unit: Unit }> = [];
  let text = 0;
  let data = 0;
  for (const head of job.unitHeads) {
    const kind = unitKind(head);
    const unit: Unit =
      kind === UNIT_FRAME ? { kind, text: job.frameTexts[text++]! } : kind === UNIT_CONNECT ? { kind, headerData: job.headerData[data++]! } : { kind };
    out.push({ connectionIndex: unitConnectionIndex(head), unit });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Results: worker → main

/**
 * Effects are recorded during execution and applied by the main thread, in order, after the
 * commit succeeded. Texts are pre-serialized JSON.
 */
export type Effect =
  /** A connect unit started: upgrade the pending HTTP request now. */
  | { kind: 'open'; connectionId: string }
  /** A connect unit finished: admitted, or refused with a reason (Errors + close 1008). */
  | { kind: 'admit'; connectionId: string; ok: boolean; reason: string; code?: string }
  | { kind: 'send'; connectionId: string; text: string }
  /**
   * Response items or a broadcast to the subscribers of channels (each recipient once), except
   * the connection `except` (a caller that gets its tagged copy in its reply frame). `skip`
   * (cluster fan-out, main/cluster-fanout.ts): members of these channels are left out (they got
   * the publication through another partition's entry).
   */
  | { kind: 'publish'; channels: string[]; text: string; except?: string; history?: HistoryRange[]; skip?: string[] }
  | { kind: 'subscribe'; connectionId: string; channel: string; recovery?: WorkerRecovery }
  | { kind: 'unsubscribe'; connectionId: string; channel: string }
  | { kind: 'auth'; connectionId: string; auth: Json | undefined }
  | { kind: 'meta'; connectionId: string; meta: Json | undefined }
  | { kind: 'close'; connectionId: string; code: number; reason: string }
  | { kind: 'createChannel'; channel: string }
  | { kind: 'dropChannel'; channel: string };

export interface LogEntry {
  status: LogStatus;
  data: Record<string, unknown>;
}

export interface JobStats {
  /** Calls executed (signals), errors among them, transaction attempts. */
  calls: number;
  errors: number;
  attempts: number;
  /** Batches: calls run again because a conflict rolled them back (a whole re-run, or the steps after a rebase). */
  rerunCalls?: number;
  /** Batches: time in `txn.commit()` (validation, log append, publication), all attempts. */
  commitMs?: number;
  /** Batches: time waiting until the commits were durable before the result left the worker. */
  durableMs?: number;
  /** Batches: the worker's time on the job, start to result (the rest of the round trip is the pool's and the threads' wake-ups). */
  runMs?: number;
  /** Batches: the worker thread that ran the job (its threadId): which worker the pool used. */
  thread?: number;
}

// Op codes of PackedEffects: triples `[op, target, length]` in `ops` (writeOp). Small numbers on
// purpose: they are packed values, not names.
/** Send: target = index of the connection in the job; length = bytes of the frame in `bytes`. */
export const OP_SEND = 1;
/** Publish: target = index in `extra` of the channel names (string[]); length = bytes of the frame. */
export const OP_PUBLISH = 2;
/** Any other effect: target = index in `extra` of the {@link Effect}; length = 0. */
export const OP_EFFECT = 3;
/**
 * Publish to all subscribers but one: target = index in `extra` of `{channels, except}` (except:
 * index of the connection in the job); length = bytes of the frame.
 */
export const OP_PUBLISH_EXCEPT = 4;
/**
 * Publish to a history channel, in offset order (main/history-delivery.ts): target = index in
 * `extra` of {@link HistoryPublish}; length = bytes of the frame.
 */
export const OP_PUBLISH_HISTORY = 5;
/** Int32 words per op. */
export const OP_WORDS = 3;

/**
 * The effects of a batch, packed: sends and publishes (nearly all effects) are op triples over
 * UTF-8 bytes the main thread hands to uWS as views (no per-effect object, no string decoding or
 * re-encoding on the socket thread); every other effect rides along as an {@link Effect} in
 * `extra`. Order is the order of `ops`; frame bytes follow each other in op order.
 */
export interface PackedEffects {
  ops: Int32Array;
  bytes: Uint8Array;
  extra: unknown[];
  /** Outcomes of the calls with `$key`, for the session's replays. */
  keyed?: KeyedOutcome[];
}

/** The target of an {@link OP_PUBLISH_HISTORY}: its channels, the caller left out (index, or -1), its offsets. */
export interface HistoryPublish {
  channels: string[];
  except: number;
  ranges: HistoryRange[];
}

export function writeOp(ops: Int32Array, at: number, op: number, target: number, length: number): void {
  ops[at] = op;
  ops[at + 1] = target;
  ops[at + 2] = length;
}

export function opCode(ops: Int32Array, at: number): number {
  return ops[at]!;
}

export function opTarget(ops: Int32Array, at: number): number {
  return ops[at + 1]!;
}

/** Bytes of the op's frame in {@link PackedEffects.bytes}. */
export function opLength(ops: Int32Array, at: number): number {
  return ops[at + 2]!;
}

/**
 * The effects of {@link PackedEffects} as plain {@link Effect}s (the readable inverse of the
 * recorder's packing; main/effects.ts `applyPacked` is the fast reader). `connectionIds` are the
 * ids of the job's connections.
 */
export function unpackEffects(packed: PackedEffects, connectionIds: readonly string[]): Effect[] {
  const { ops, bytes, extra } = packed;
  const effects: Effect[] = [];
  let offset = 0;
  for (let at = 0; at < ops.length; at += OP_WORDS) {
    const op = opCode(ops, at);
    const length = opLength(ops, at);
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('utf8');
    offset += length;
    if (op === OP_SEND) effects.push({ kind: 'send', connectionId: connectionIds[opTarget(ops, at)]!, text });
    else if (op === OP_PUBLISH) effects.push({ kind: 'publish', channels: extra[opTarget(ops, at)] as string[], text });
    else if (op === OP_PUBLISH_EXCEPT) {
      const target = extra[opTarget(ops, at)] as { channels: string[]; except: number };
      effects.push({ kind: 'publish', channels: target.channels, text, except: connectionIds[target.except]! });
    } else if (op === OP_PUBLISH_HISTORY) {
      const target = extra[opTarget(ops, at)] as HistoryPublish;
      const except = target.except >= 0 ? { except: connectionIds[target.except]! } : {};
      effects.push({ kind: 'publish', channels: target.channels, text, ...except, history: target.ranges });
    }
    else effects.push(extra[opTarget(ops, at)] as Effect);
  }
  return effects;
}

/** A commit a job made: its id and what it wrote (the live queries it may change). */
export interface CommitWrites extends WrittenRows {
  id: number;
}

export interface BatchResult {
  /** The commits this job's thread made since its previous result, in commit order (live queries). */
  commits?: CommitWrites[];
  /** Effects by connection id (tasks, hooks; a batch whose commit failed durably). */
  effects: Effect[];
  /** A batch's effects, applied after `effects`. */
  packed?: PackedEffects;
  logs: LogEntry[];
  stats: JobStats;
}

export interface TaskResult extends BatchResult {
  ok: boolean;
  /** Next interval in seconds (interval tasks). */
  next: number | undefined;
}

export type JobResult = BatchResult | TaskResult | LiveResult;

/**
 * The shared store a worker attaches to, asked for over the control plane once the worker has
 * loaded the app (`ControlApi.storeHandles`): the pool starts while the main thread still opens the
 * data folder, so the threads' start-up (module loading) overlaps the load of the tables.
 */
export interface StoreInit {
  /** Store handles (SharedArrayBuffers) for `SharedStore.attach`. */
  handles: unknown;
  /** Write-ahead log handles for `Wal.attach`. */
  wal: unknown;
}

/** What every worker receives in `workerData`. */
export interface WorkerInit {
  appPath: string;
  /** Export name of the Server in the app module (found by the main thread). */
  exportName: string;
  /** Progress slots (see workers/progress.ts). */
  progress: SharedArrayBuffer;
  maxCallsPerFrame: number;
  /** `limits.maxRecoveredPublications` (a joining call reads at most that many missed items). */
  maxRecoveredPublications: number;
  debug: boolean;
  /** Register tsx in the worker before importing the app (a .ts app module). */
  typescript: boolean;
  /** Cluster mode (docs/cluster.md): commits go to the node's commit stream through the control plane. */
  cluster: boolean;
}
