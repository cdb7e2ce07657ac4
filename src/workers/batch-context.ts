/**
 * @module workers/batch-context
 * The state of one attempt at a batch ({@link BatchContext}), shared by the executors of its
 * units (workers/execute-batch.ts, workers/execute-connection.ts), and small helpers of every
 * executor (error messages for callers, failure logs, the check of channels subscribed during a
 * call).
 */
import { ErrorCode, LexiconsError, toLexiconsError } from '../errors.js';
import type { BatchJob, JobStats, WorkerRecovery } from '../job-contract.js';
import type { Db } from '../storage/api.js';
import { isThenable } from '../storage/transaction-runner.js';
import type { ConnectionHandle, WorkerServerHandle } from './handles.js';
import type { ProgressWriter } from './progress.js';
import type { Recorder } from './recorder.js';
import type { Stepper } from './steppers.js';
import type { WorkerApp } from './worker-app.js';

export interface BatchContext {
  readonly app: WorkerApp;
  readonly job: BatchJob;
  readonly recorder: Recorder;
  readonly stepper: Stepper;
  readonly progress: ProgressWriter;
  readonly connections: ConnectionHandle[];
  readonly sv: WorkerServerHandle;
  readonly stats: JobStats;
  /** Batches in one transaction: called before each unit runs (marks a transaction step, execute-batch.ts). */
  readonly unitStart?: ((unit: number, conn: ConnectionHandle, text: number, data: number) => void) | undefined;
  /** Batches re-run one transaction per call: called once a unit finished (its calls committed), before the next one runs. */
  readonly unitEnd?: ((unit: number) => void) | undefined;
}

/** The message a caller gets for an error; the stack only goes to the log. */
export function publicMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/**
 * Channels subscribed during the call must exist (declared, or created at run time), and their
 * class's `authorize` (if any) must admit the connection; it runs here, inside the call's
 * savepoint, with the call's `db`. A history channel the client has a position for gets its
 * missed items read at the call's snapshot ({@link readRecovery}).
 */
export async function checkSubscriptions(ctx: BatchContext, conn: ConnectionHandle, db: Db): Promise<void> {
  const pending = ctx.recorder.pendingSubscriptions;
  if (pending.length === 0) return;
  const view = ctx.recorder.view; // the job's creates and drops, and the thread's registry cache
  let unknown = pending.filter((name) => !view.exists(name));
  if (unknown.length > 0 && view.runtimeVersion < ctx.job.channelsVersion) {
    await ctx.app.refreshChannels();
    unknown = unknown.filter((name) => !view.exists(name));
  }
  if (unknown.length > 0) {
    throw new LexiconsError(ErrorCode.CHANNEL_NOT_FOUND, `Channel [${unknown[0]}] does not exist (declare it, or create it with sv.createChannel)`);
  }
  for (const channel of [...pending]) {
    const rule = view.rules.rule(channel);
    if (rule.authorize !== undefined) {
      let allowed: unknown = rule.authorize({ db, ws: conn, channel });
      if (isThenable(allowed)) allowed = await allowed;
      if (allowed !== true) throw new LexiconsError(ErrorCode.CHANNEL_FORBIDDEN, `Not allowed to join [${channel}]`);
    }
    if (rule.history !== null) readRecovery(ctx, conn, channel);
  }
}

/**
 * The client's position in a history channel it joins: the items after it, read at this
 * transaction's snapshot (no read-set entry), ride on the subscribe effect when the recovery looks
 * complete here; the main thread finishes it (main/recovery.ts).
 */
function readRecovery(ctx: BatchContext, conn: ConnectionHandle, channel: string): void {
  const position = conn.positions?.[channel];
  const txn = ctx.recorder.txn;
  if (position === undefined || txn === undefined) return;
  const cap = ctx.app.maxRecoveredPublications;
  const page = txn.history(channel, { after: position.offset, limit: cap + 1 });
  if (page === null || (page.epoch !== position.epoch && position.epoch !== '') || position.offset + 1 < page.oldest || page.offset - position.offset > cap) return;
  const recovery: WorkerRecovery = { epoch: page.epoch, top: page.offset, oldest: page.oldest, items: page.items.map((item) => [item.offset, item.text]) };
  ctx.recorder.attachRecovery(conn.id, channel, recovery);
}

export function logFailure(ctx: BatchContext, status: 'SIGNAL-ERROR' | 'HEADER-CHECK-FAILED' | 'ERROR', data: Record<string, unknown>, err: unknown): void {
  const e = toLexiconsError(err);
  const entry: Record<string, unknown> = { ...data, code: e.code, message: e.message };
  if (ctx.app.debug && e.code === ErrorCode.EXECUTION) {
    const cause = e.cause instanceof Error ? e.cause : e;
    entry.stack = cause.stack;
  }
  ctx.recorder.log(status, entry);
}
