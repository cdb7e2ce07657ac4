/**
 * @module workers/execute
 * Executes a batch job in a worker: frames (Signals), connection attempts (Headers, gate,
 * onConnect) and disconnections (onDisconnect), in unit order, as one transaction with a
 * savepoint per call. Nothing leaves the worker before the commit succeeded: the result carries
 * the ordered effects for the main thread. On a conflict the whole batch is re-executed with a
 * fresh transaction (outputs of the failed attempt are discarded).
 */
import type { SignalResponse } from '../components.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import { itemText, parseFrame, type Call } from '../protocol.js';
import { checkArgs } from './args.js';
import { runConnect, runDisconnect } from './connect.js';
import { WorkerConnection, WorkerServer } from './context.js';
import type { BatchJob, BatchResult, JobStats } from './jobs.js';
import { checkSubscriptions, isThenable, logFailure, publicMessage, type JobContext, type WorkerApp } from './job-context.js';
import { ProgressWriter } from './progress.js';
import { Recorder } from './recorder.js';
import { BatchStepper, IsolatedStepper, MAX_ATTEMPTS, OPTIMISTIC_ATTEMPTS, type Stepper } from './txn.js';

export async function runBatch(app: WorkerApp, job: BatchJob): Promise<BatchResult> {
  const progress = new ProgressWriter(app.progress, job.slot);
  const stats: JobStats = { calls: 0, errors: 0, attempts: 0 };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    stats.attempts++;
    stats.calls = 0;
    stats.errors = 0;
    const rec = new Recorder(app.view);
    app.view.resetJob();
    const txn = app.store.begin({ exclusive: attempt >= OPTIMISTIC_ATTEMPTS });
    const ctx = makeContext(app, job, rec, new BatchStepper(txn, rec), progress, stats);
    try {
      await runUnits(ctx);
    } catch (err) {
      progress.leave();
      txn.abort();
      throw err;
    }
    progress.leave();
    try {
      progress.checkNotAborted();
    } catch (err) {
      txn.abort();
      throw err;
    }
    const result = txn.commit();
    if (result.ok) return { effects: rec.effects(), logs: rec.logs, stats };
    if (result.reason === 'unique') {
      // Some call of the batch broke a unique constraint against a concurrent commit: re-run
      // with one transaction per call, so the offending call alone gets the error.
      stats.calls = 0;
      stats.errors = 0;
      const isolatedRec = new Recorder(app.view);
      app.view.resetJob();
      const stepper = new IsolatedStepper(app.store, isolatedRec, progress);
      await runUnits(makeContext(app, job, isolatedRec, stepper, progress, stats));
      stats.attempts += stepper.attempts;
      return { effects: isolatedRec.effects(), logs: isolatedRec.logs, stats };
    }
  }
  throw new LexiconsError(ErrorCode.CONFLICT, `batch kept conflicting after ${MAX_ATTEMPTS} attempts`);
}

function makeContext(app: WorkerApp, job: BatchJob, rec: Recorder, stepper: Stepper, progress: ProgressWriter, stats: JobStats): JobContext {
  const conns = job.conns.map((snapshot) => new WorkerConnection(snapshot, rec));
  const sv = new WorkerServer(rec, () => app.info());
  return { app, job, rec, stepper, progress, conns, sv, stats };
}

async function runUnits(ctx: JobContext): Promise<void> {
  const { units } = ctx.job;
  for (let i = 0; i < units.length; i++) {
    const unit = units[i]!;
    const conn = ctx.conns[unit.c]!;
    if (unit.k === 'frame') await runFrame(ctx, i, conn, unit.text);
    else if (unit.k === 'connect') await runConnect(ctx, i, conn, unit);
    else await runDisconnect(ctx, i, conn);
  }
}

async function runFrame(ctx: JobContext, index: number, conn: WorkerConnection, text: string): Promise<void> {
  let calls: Array<Call | LexiconsError>;
  try {
    calls = parseFrame(text, ctx.app.maxCallsPerFrame);
  } catch (err) {
    ctx.stats.errors++;
    ctx.rec.error(index, conn.id, publicMessage(err));
    return;
  }
  for (const call of calls) {
    if (conn.closed) break; // ws.close() was called: later calls of the frame are not run
    if (call instanceof Error) {
      ctx.stats.errors++;
      ctx.rec.error(index, conn.id, call.message, (call as { callId?: string | number }).callId);
      continue;
    }
    await runCall(ctx, index, conn, call);
  }
}

async function runCall(ctx: JobContext, index: number, conn: WorkerConnection, call: Call): Promise<void> {
  const { app, rec, progress, sv } = ctx;
  ctx.stats.calls++;
  const entry = app.signals.get(call.name);
  if (!entry) {
    ctx.stats.errors++;
    rec.error(index, conn.id, `No signal [${call.name}]`, call.id);
    return;
  }
  try {
    await ctx.stepper.step(conn, async (db) => {
      progress.enter(index);
      let result: unknown;
      try {
        const args = checkArgs(entry.args, call.args);
        result = entry.instance.execute({ ...args, db, ws: conn, sv });
        if (isThenable(result)) result = await result;
      } finally {
        progress.leave();
      }
      await checkSubscriptions(ctx);
      const response = asResponse(entry.name, result);
      if (response && response.channels.length > 0) rec.respond(index, itemText(entry.name, response.payload), response.channels);
    });
  } catch (err) {
    ctx.stats.errors++;
    rec.error(index, conn.id, publicMessage(err), call.id);
    logFailure(ctx, 'SIGNAL-ERROR', { signal: entry.name, connection: conn.id }, err);
  }
}

function asResponse(name: string, result: unknown): SignalResponse | undefined {
  if (result === undefined || result === null) return undefined;
  const r = result as Partial<SignalResponse>;
  if (typeof result !== 'object' || !('payload' in r) || !Array.isArray(r.channels) || !r.channels.every((c) => typeof c === 'string')) {
    throw new LexiconsError(ErrorCode.EXECUTION, `Signal [${name}] returned an invalid response: use this.response(payload, channels)`);
  }
  return r as SignalResponse;
}
