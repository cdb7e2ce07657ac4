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

export interface BatchJob {
  kind: 'batch';
  /** Progress slot (see workers/progress.ts). */
  slot: number;
  conns: ConnSnapshot[];
  units: Unit[];
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

export interface BatchResult {
  effects: Effect[];
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
