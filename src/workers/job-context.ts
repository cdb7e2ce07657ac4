/**
 * @module workers/job-context
 * What the executors of a worker share: the app as loaded at start-up ({@link WorkerApp}), the
 * state of one job attempt ({@link JobContext}), and small helpers (error messages for callers,
 * failure logs, the check of channels subscribed during a call).
 */
import type { Header, Signal } from '../components.js';
import type { Server } from '../server.js';
import { ErrorCode, LexiconsError, toLexiconsError } from '../errors.js';
import type { ArgSpec } from './args.js';
import type { ServerInfo, ConnectionHandle, WorkerServerHandle } from './handles.js';
import type { BatchJob, JobStats } from '../job-contract.js';
import type { ProgressWriter } from './progress.js';
import type { ChannelView, Recorder } from './recorder.js';
import type { Stepper, TxnSource } from './txn.js';

export interface ComponentEntry<C> {
  readonly name: string;
  readonly instance: C;
  readonly args: ArgSpec | undefined;
}

/** Everything a worker loaded once at start-up. */
export interface WorkerApp {
  readonly server: Server;
  readonly store: TxnSource;
  readonly signals: ReadonlyMap<string, ComponentEntry<Signal>>;
  /** Headers by canonical name (the main thread sends header data keyed by it). */
  readonly headers: ReadonlyMap<string, ComponentEntry<Header>>;
  readonly view: ChannelView;
  readonly progress: SharedArrayBuffer;
  readonly maxCallsPerFrame: number;
  readonly debug: boolean;
  info(): Promise<ServerInfo>;
  /** Refreshes the run-time channel registry cache from the main thread. */
  refreshChannels(): Promise<void>;
}

export interface JobContext {
  readonly app: WorkerApp;
  readonly job: BatchJob;
  readonly recorder: Recorder;
  readonly stepper: Stepper;
  readonly progress: ProgressWriter;
  readonly connections: ConnectionHandle[];
  readonly sv: WorkerServerHandle;
  readonly stats: JobStats;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** The message a caller gets for an error; the stack only goes to the log. */
export function publicMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** Channels subscribed during the call must exist (declared, or created at run time). */
export async function checkSubscriptions(ctx: JobContext): Promise<void> {
  const pending = ctx.recorder.pendingSubscriptions;
  if (pending.length === 0) return;
  const { view } = ctx.app;
  let unknown = pending.filter((name) => !view.exists(name));
  if (unknown.length > 0 && view.runtimeVersion < ctx.job.channelsVersion) {
    await ctx.app.refreshChannels();
    unknown = unknown.filter((name) => !view.exists(name));
  }
  if (unknown.length > 0) {
    throw new LexiconsError(ErrorCode.NOT_FOUND, `Channel [${unknown[0]}] does not exist (declare it, or create it with sv.createChannel)`);
  }
}

export function logFailure(ctx: JobContext, status: 'SIGNAL-ERROR' | 'HEADER-CHECK-FAILED' | 'ERROR', data: Record<string, unknown>, err: unknown): void {
  const e = toLexiconsError(err);
  const entry: Record<string, unknown> = { ...data, code: e.code, message: e.message };
  if (ctx.app.debug && e.code === ErrorCode.EXECUTION) {
    const cause = e.cause instanceof Error ? e.cause : e;
    entry.stack = cause.stack;
  }
  ctx.recorder.log(status, entry);
}
