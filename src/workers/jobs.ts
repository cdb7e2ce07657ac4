/**
 * @module workers/jobs
 * What the main thread sends to a pool worker (jobs) and what comes back (effects, logs). Plain
 * structured-cloneable data; shared by both sides as types only.
 *
 * A batch packs work units of many connections into one pool task (piscina costs ~30 µs per task,
 * so one task per message would cap the server far below what uWS carries). Units of one
 * connection appear in the order they arrived, and a connection has at most one batch in flight.
 */
import type { Json } from '../components.js';
import type { LogStatus } from '../server.js';

/** The state of a connection as the main thread knows it when the batch is built. */
export interface ConnSnapshot {
  id: string;
  address: string;
  auth: Json | undefined;
  channels: string[];
}

/** One unit of work: a frame, a connection attempt (Headers), or a disconnection (hook). */
export type Unit =
  | { k: 'frame'; c: number; text: string }
  | { k: 'connect'; c: number; data: Record<string, string> }
  | { k: 'disconnect'; c: number };

/** Unit kinds in the low 2 bits of a packed unit head (`connIndex << 2 | kind`). */
export const UNIT_FRAME = 0;
export const UNIT_CONNECT = 1;
export const UNIT_DISCONNECT = 2;

/**
 * A batch travels packed (structured clone of a few flat values instead of one object per unit,
 * which cost more than the calls themselves): `heads[i] = connIndex << 2 | kind` per unit, the
 * frame texts in unit order in `texts`, the header data of connect units in order in `data`.
 */
export interface BatchJob {
  kind: 'batch';
  /** Progress slot (see workers/progress.ts). */
  slot: number;
  conns: ConnSnapshot[];
  heads: Int32Array;
  texts: string[];
  data: Array<Record<string, string>>;
  /** Version of the run-time channel registry on the main thread (workers refresh on change). */
  channelsVersion: number;
}

export interface TaskJob {
  kind: 'task';
  slot: number;
  /** Task class name. */
  name: string;
  /** false: only compute the interval (`set()`), do not execute. */
  run: boolean;
}

export interface HookJob {
  kind: 'hook';
  slot: number;
  /** `ready` runs nothing: it proves a worker loaded the app (start-up check). */
  hook: 'onStart' | 'onShutdown' | 'ready';
}

export type Job = BatchJob | TaskJob | HookJob;

/**
 * Effects are recorded during execution and applied by the main thread, in order, after the
 * commit succeeded. `c` is a connection id; texts are pre-serialized JSON.
 */
export type Effect =
  /** A connect unit started: upgrade the pending HTTP request now. */
  | { t: 'open'; c: string }
  /** A connect unit finished: admitted, or rejected with a reason (Errors + close 1008). */
  | { t: 'admit'; c: string; ok: boolean; reason: string }
  | { t: 'send'; c: string; text: string }
  /** Response items or a broadcast to the subscribers of channels (each recipient once). */
  | { t: 'pub'; ch: string[]; text: string }
  | { t: 'sub'; c: string; ch: string }
  | { t: 'unsub'; c: string; ch: string }
  | { t: 'auth'; c: string; v: Json | undefined }
  | { t: 'close'; c: string; code: number; reason: string }
  | { t: 'mkch'; ch: string }
  | { t: 'rmch'; ch: string };

export interface LogEntry {
  status: LogStatus;
  data: Record<string, unknown>;
}

export interface JobStats {
  /** Calls executed (signals), errors among them, transaction attempts. */
  calls: number;
  errors: number;
  attempts: number;
}

/** Op codes of {@link PackedEffects}: triples `[op, a, b]` in `ops`. */
export const OP_SEND = 1; // a = connection index in the job, b = bytes of the frame in `out`
export const OP_PUB = 2; // a = index in `extra` of the channel names (string[]), b = bytes in `out`
export const OP_EFFECT = 3; // a = index in `extra` of an {@link Effect} (anything else), b = 0

/**
 * The effects of a batch, packed: sends and publishes (nearly all effects) are op triples and
 * UTF-8 bytes the main thread hands to uWS as views (no per-effect object, no string decoding or
 * re-encoding on the socket thread); every other effect rides along as an {@link Effect} in
 * `extra`. Order is the order of `ops`.
 */
export interface PackedEffects {
  ops: Int32Array;
  out: Uint8Array;
  extra: unknown[];
}

export interface BatchResult {
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

export type JobResult = BatchResult | TaskResult;

/** What every worker receives in `workerData`. */
export interface WorkerInit {
  appPath: string;
  /** Export name of the Server in the app module (found by the main thread). */
  exportName: string;
  /** Store handles (SharedArrayBuffers) for `SharedStore.attach`. */
  handles: unknown;
  /** Write-ahead log handles for `Wal.attach`. */
  wal: unknown;
  /** Progress slots (see workers/progress.ts). */
  progress: SharedArrayBuffer;
  maxCallsPerFrame: number;
  debug: boolean;
  /** Register tsx in the worker before importing the app (a .ts app module). */
  typescript: boolean;
}
