/**
 * @module workers/execute
 * Executes a batch job in a worker: frames (Signals), connection attempts (Headers, gate,
 * onConnect) and disconnections (onDisconnect), in unit order, as one transaction with a
 * savepoint per call. Nothing leaves the worker before the commit succeeded: the result carries
 * the ordered effects for the main thread. On a conflict the whole batch is re-executed with a
 * fresh transaction (outputs of the failed attempt are discarded).
 */
import type { Header, Signal, SignalResponse } from '../components.js';
import type { Server } from '../server.js';
import { ErrorCode, LexiconsError, toLexiconsError } from '../errors.js';
import { decodeHeaderValue, itemText, parseFrame, RESERVED_ARGS, type Call } from '../protocol.js';
import { checkArgs, type ArgSpec } from './args.js';
import { ChannelView, Recorder, WorkerConnection, WorkerServer, type ServerInfo } from './context.js';
import type { BatchJob, BatchResult, JobStats, Unit } from './jobs.js';
import { ProgressWriter } from './progress.js';
import { BatchStepper, IsolatedStepper, MAX_ATTEMPTS, OPTIMISTIC_ATTEMPTS, type Stepper, type TxnSource } from './txn.js';

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

interface JobContext {
  readonly app: WorkerApp;
  readonly job: BatchJob;
  readonly rec: Recorder;
  readonly stepper: Stepper;
  readonly progress: ProgressWriter;
  readonly conns: WorkerConnection[];
  readonly sv: WorkerServer;
  readonly stats: JobStats;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** The message a caller gets for an error; the stack only goes to the log. */
export function publicMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

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

/** Channels subscribed during the call must exist (declared, or created at run time). */
async function checkSubscriptions(ctx: JobContext): Promise<void> {
  const pending = ctx.rec.pendingSubscriptions;
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

function logFailure(ctx: JobContext, status: 'SIGNAL-ERROR' | 'HEADER-CHECK-FAILED' | 'ERROR', data: Record<string, unknown>, err: unknown): void {
  const e = toLexiconsError(err);
  const entry: Record<string, unknown> = { ...data, code: e.code, message: e.message };
  if (ctx.app.debug && e.code === ErrorCode.EXECUTION) {
    const cause = e.cause instanceof Error ? e.cause : e;
    entry.stack = cause.stack;
  }
  ctx.rec.log(status, entry);
}

function headerArgs(raw: string): Record<string, unknown> {
  const args = decodeHeaderValue(raw);
  for (const key of RESERVED_ARGS) {
    if (Object.prototype.hasOwnProperty.call(args, key)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `argument name ${key} is reserved`);
  }
  return args;
}

async function runConnect(ctx: JobContext, index: number, conn: WorkerConnection, unit: Extract<Unit, { k: 'connect' }>): Promise<void> {
  const { app, rec, progress, sv } = ctx;
  rec.push({ t: 'open', c: conn.id });
  const from = rec.length;
  const present = Object.entries(unit.data);
  const reasons: string[] = [];
  let ok = true;
  if (present.length > 0) {
    const results: boolean[] = [];
    for (const [name, raw] of present) {
      const entry = app.headers.get(name);
      if (!entry) continue;
      try {
        const admitted = await ctx.stepper.step(conn, async (db) => {
          progress.enter(index);
          try {
            const args = checkArgs(entry.args, headerArgs(raw));
            let result: unknown = entry.instance.execute({ ...args, db, ws: conn, sv });
            if (isThenable(result)) result = await result;
            return Boolean(result);
          } finally {
            progress.leave();
          }
        });
        if (!admitted) reasons.push(`${name} rejected the credentials`);
        results.push(admitted);
      } catch (err) {
        results.push(false);
        reasons.push(`${name} failed: ${publicMessage(err)}`);
        logFailure(ctx, 'HEADER-CHECK-FAILED', { header: name, connection: conn.id, address: conn.address }, err);
      }
    }
    const gate = app.server.options.gate ?? ((rs: boolean[]) => rs.length > 0 && rs.every(Boolean));
    try {
      progress.enter(index);
      ok = Boolean(gate(results));
    } catch (err) {
      ok = false;
      reasons.push(`gate failed: ${publicMessage(err)}`);
    } finally {
      progress.leave();
    }
    if (!ok && reasons.length === 0) reasons.push('rejected by the gate');
  }
  if (ok && app.server.options.onConnect) {
    const hook = app.server.options.onConnect;
    try {
      await ctx.stepper.step(conn, async (db) => {
        progress.enter(index);
        try {
          await hook({ db, ws: conn, sv });
        } finally {
          progress.leave();
        }
      });
    } catch (err) {
      logFailure(ctx, 'ERROR', { hook: 'onConnect', connection: conn.id }, err);
    }
  }
  if (!ok) {
    rec.dropSubscriptions(conn.id, from);
    rec.log('HEADER-CHECK-FAILED', { connection: conn.id, address: conn.address, reason: reasons.join('; ') });
  }
  rec.push({ t: 'admit', c: conn.id, ok, reason: ok ? '' : reasons.join('; ') });
}

async function runDisconnect(ctx: JobContext, index: number, conn: WorkerConnection): Promise<void> {
  const hook = ctx.app.server.options.onDisconnect;
  if (!hook) return;
  try {
    await ctx.stepper.step(conn, async (db) => {
      ctx.progress.enter(index);
      try {
        await hook({ db, ws: conn, sv: ctx.sv });
      } finally {
        ctx.progress.leave();
      }
    });
  } catch (err) {
    logFailure(ctx, 'ERROR', { hook: 'onDisconnect', connection: conn.id }, err);
  }
}
