/**
 * @module workers/execute-batch
 * Executes a batch job in a worker: frames (Signals), connection attempts (Headers, gate,
 * onConnect) and disconnections (onDisconnect), in unit order, as one transaction with a
 * savepoint per call. Nothing leaves the worker before the commit succeeded: the result carries
 * the ordered effects for the main thread. Each unit is a step of the transaction: on a
 * conflict, the units before the first one whose reads a concurrent commit overwrote are kept
 * and the transaction is rebased (storage/transaction.ts `commit`); only the units from that one
 * on are re-run (their effects, connection state and counts rewound to the unit's mark). When the
 * first unit already conflicts, the whole batch re-runs in a fresh transaction.
 */
import type { Signal, SignalResponse } from '../components.js';
import type { Db } from '../storage/api.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import { scanCallIds } from '../call-ids.js';
import { errorItemsFrame, itemText, parseFrame, unknownSignalError, wireCodeOf, type Call, type CallId, type FrameError } from '../protocol.js';
import { WireCode } from '../wire.js';
import { checkArgs } from './args.js';
import { runConnect, runDisconnect } from './execute-connection.js';
import { ConnectionHandle, WorkerServerHandle } from './handles.js';
import { decodeBatch, UNIT_CONNECT, UNIT_FRAME, unitConnectionIndex, unitKind, type BatchJob, type BatchResult, type Effect, type JobStats } from '../job-contract.js';
import { checkSubscriptions, logFailure, publicMessage, type BatchContext } from './batch-context.js';
import type { ComponentEntry, WorkerApp } from './worker-app.js';
import { ProgressWriter } from './progress.js';
import { Recorder, type UnitMark } from './recorder.js';
import { BatchStepper, commitWithRetries, IsolatedStepper, isThenable, type Stepper } from './steppers.js';

export async function runBatch(app: WorkerApp, job: BatchJob): Promise<BatchResult> {
  const progress = new ProgressWriter(app.progress, job.slot, job.jobId);
  const stats: JobStats = { calls: 0, errors: 0, attempts: 0 };
  let ctx!: BatchContext;
  /** Per unit started in this transaction (index = unit = transaction step): where to rewind to. */
  let marks: BatchMark[] = [];
  const outcome = await commitWithRetries(app.store, progress, 'batch', {
    run: (txn) => {
      // Every attempt starts from scratch: outputs of a failed attempt are discarded.
      stats.attempts++;
      if (stats.attempts > 1) stats.rerunCalls = (stats.rerunCalls ?? 0) + stats.calls;
      stats.calls = 0;
      stats.errors = 0;
      const recorder = new Recorder(app.view.forJob());
      const units: BatchMark[] = (marks = []);
      const unitStart = (unit: number, conn: ConnectionHandle, text: number, data: number): void => {
        txn.step();
        units.push({ at: recorder.unitMark(conn), calls: stats.calls, errors: stats.errors, text, data });
      };
      ctx = makeContext(app, job, recorder, new BatchStepper(txn, recorder), progress, stats, unitStart);
      return runUnits(ctx, 0, 0, 0);
    },
    undo: () => undefined,
    units: job.unitHeads.length,
    resume: (_txn, step) => {
      stats.attempts++;
      const from = marks[step]!;
      stats.rerunCalls = (stats.rerunCalls ?? 0) + stats.calls - from.calls;
      // Later units may have changed other connections: restore each unit's connection, last first.
      for (let u = marks.length - 1; u >= step; u--) marks[u]!.at.mark.connection!.restore(marks[u]!.at.mark.connectionState!);
      ctx.recorder.rewind(from.at);
      stats.calls = from.calls;
      stats.errors = from.errors;
      marks.length = step;
      return runUnits(ctx, step, from.text, from.data);
    },
  });
  stats.commitMs = outcome.commitMs;
  if (outcome.committed) {
    // Every unit is committed: should this worker die before its result reaches the main thread,
    // none of them may run again (workers/progress.ts).
    progress.done(job.unitHeads.length);
    ctx.recorder.publications = outcome.publications;
    return { effects: [], packed: ctx.recorder.pack(ctx.connections), logs: ctx.recorder.logs, stats };
  }
  // Some call of the batch broke a unique constraint against a concurrent commit: re-run with
  // one transaction per call, so the offending call alone gets the error.
  stats.calls = 0;
  stats.errors = 0;
  const recorder = new Recorder(app.view.forJob());
  const stepper = new IsolatedStepper(app.store, recorder, progress);
  // Each unit's calls are committed as they run: once a unit is finished, the main thread must
  // not re-run it if this job fails later (time limit, worker death): workers/progress.ts.
  const isolated: BatchContext = { ...makeContext(app, job, recorder, stepper, progress, stats), unitEnd: (unit) => progress.done(unit + 1) };
  const pending = runUnits(isolated, 0, 0, 0);
  if (pending !== undefined) await pending;
  stats.attempts += stepper.attempts;
  stats.commitMs += stepper.commitMs;
  return { effects: [], packed: recorder.pack(isolated.connections), logs: recorder.logs, stats };
}

/**
 * What every caller of a batch gets when none of it could be made durable (workers/worker.ts):
 * an Errors frame per frame unit (an item per call with `$id`), a refusal per connect unit, by
 * connection id; all with the code NOT_SAVED.
 */
export function batchFailureEffects(job: BatchJob, message: string): Effect[] {
  const effects: Effect[] = [];
  for (const { connectionIndex, unit } of decodeBatch(job)) {
    const { id: connectionId, v1 } = job.connections[connectionIndex]!;
    if (unit.kind === UNIT_FRAME) effects.push({ kind: 'send', connectionId, text: errorItemsFrame(message, WireCode.NOT_SAVED, scanCallIds(unit.text), v1 === true) });
    else if (unit.kind === UNIT_CONNECT) effects.push({ kind: 'open', connectionId }, { kind: 'admit', connectionId, ok: false, reason: message, code: WireCode.NOT_SAVED });
  }
  return effects;
}

/** The code an error item carries: for calls with `$id` and on lexicons.v1 connections (v0 frames stay as they were). */
function shownCode(conn: ConnectionHandle, code: string, id: CallId | undefined): string | undefined {
  return conn.v1 || id !== undefined ? code : undefined;
}

/** The state at the start of a unit of a batch transaction (the unit re-runs from it after a rebase). */
interface BatchMark {
  at: UnitMark;
  calls: number;
  errors: number;
  /** Frame texts and header data consumed by the units before it. */
  text: number;
  data: number;
}

function makeContext(app: WorkerApp, job: BatchJob, recorder: Recorder, stepper: Stepper, progress: ProgressWriter, stats: JobStats, unitStart?: BatchContext['unitStart']): BatchContext {
  const connections = job.connections.map((snapshot) => new ConnectionHandle(snapshot, recorder));
  const sv = new WorkerServerHandle(recorder, app.main);
  return { app, job, recorder, stepper, progress, connections, sv, stats, unitStart };
}

/**
 * Runs the units from `from` (frame texts from `text`, header data from `data`) synchronously
 * while user code is synchronous: no promise or microtask per call. Returns a promise only when
 * something awaited, and then finishes the rest asynchronously.
 */
function runUnits(ctx: BatchContext, from: number, text: number, data: number): Promise<void> | undefined {
  const { unitHeads, frameTexts, headerData } = ctx.job;
  for (let i = from; i < unitHeads.length; i++) {
    const head = unitHeads[i]!;
    const conn = ctx.connections[unitConnectionIndex(head)]!;
    const kind = unitKind(head);
    ctx.unitStart?.(i, conn, text, data);
    let pending: Promise<void> | undefined;
    if (kind === UNIT_FRAME) pending = runFrame(ctx, i, conn, frameTexts[text++]!);
    else if (kind === UNIT_CONNECT) pending = runConnect(ctx, i, conn, headerData[data++]!);
    else pending = runDisconnect(ctx, i, conn);
    if (pending !== undefined) {
      const t = text;
      const d = data;
      return pending.then(() => {
        ctx.unitEnd?.(i);
        return runUnits(ctx, i + 1, t, d);
      });
    }
    ctx.unitEnd?.(i);
  }
  return undefined;
}

function runFrame(ctx: BatchContext, index: number, conn: ConnectionHandle, text: string): Promise<void> | undefined {
  let calls: Array<Call | LexiconsError>;
  try {
    calls = parseFrame(text, ctx.app.maxCallsPerFrame);
  } catch (err) {
    ctx.stats.errors++;
    const message = publicMessage(err);
    const ids = (err as FrameError).callIds ?? [];
    if (ids.length === 0) ctx.recorder.error(index, conn.id, message, shownCode(conn, WireCode.PROTOCOL, undefined));
    for (const id of ids) ctx.recorder.error(index, conn.id, message, WireCode.PROTOCOL, id);
    return undefined;
  }
  return runCalls(ctx, index, conn, calls, 0);
}

function runCalls(ctx: BatchContext, index: number, conn: ConnectionHandle, calls: Array<Call | LexiconsError>, from: number): Promise<void> | undefined {
  for (let j = from; j < calls.length; j++) {
    if (conn.closed) break; // ws.close() was called: later calls of the frame are not run
    const call = calls[j]!;
    if (call instanceof Error) {
      ctx.stats.errors++;
      const id = (call as { callId?: CallId }).callId;
      ctx.recorder.error(index, conn.id, call.message, shownCode(conn, wireCodeOf(call), id), id);
      continue;
    }
    const pending = runCall(ctx, index, conn, call);
    if (pending !== undefined) return pending.then(() => runCalls(ctx, index, conn, calls, j + 1));
  }
  return undefined;
}

function runCall(ctx: BatchContext, index: number, conn: ConnectionHandle, call: Call): Promise<void> | undefined {
  ctx.stats.calls++;
  const entry = ctx.app.signals.get(call.name);
  const id = call.id;
  if (!entry) {
    ctx.stats.errors++;
    ctx.recorder.error(index, conn.id, unknownSignalError(call.name).message, shownCode(conn, WireCode.UNKNOWN_SIGNAL, id), id);
    return undefined;
  }
  const failed = (err: unknown): void => {
    ctx.stats.errors++;
    if (id !== undefined) ctx.recorder.failCall(index, conn.id, publicMessage(err), wireCodeOf(err), id);
    else ctx.recorder.error(index, conn.id, publicMessage(err), shownCode(conn, wireCodeOf(err), id), id);
    logFailure(ctx, 'SIGNAL-ERROR', { signal: entry.name, connection: conn.id }, err);
  };
  // A call with $id gets one terminal outcome: its items are held until it succeeded (recorder.ts).
  if (id !== undefined) ctx.recorder.beginCall(conn.id, id, call.key);
  let pending: void | Promise<void>;
  try {
    pending = ctx.stepper.step(conn, (db) => callBody(ctx, entry, index, conn, call, db));
  } catch (err) {
    failed(err);
    return undefined;
  }
  if (isThenable(pending)) return (pending as Promise<void>).then(id === undefined ? undefined : () => ctx.recorder.endCall(index), failed);
  if (id !== undefined) ctx.recorder.endCall(index);
  return undefined;
}

/** The call inside its savepoint: user code, then the subscription check and the response. */
function callBody(ctx: BatchContext, entry: ComponentEntry<Signal>, index: number, conn: ConnectionHandle, call: Call, db: Db): void | Promise<void> {
  const { progress } = ctx;
  progress.enter(index);
  let result: unknown;
  try {
    const args = checkArgs(entry.args, call.args);
    result = entry.instance.execute({ ...args, db, ws: conn, sv: ctx.sv });
  } catch (err) {
    progress.leave();
    throw err;
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      (value) => {
        progress.leave();
        return afterCall(ctx, entry, index, conn, db, value);
      },
      (err: unknown) => {
        progress.leave();
        throw err;
      },
    );
  }
  progress.leave();
  return afterCall(ctx, entry, index, conn, db, result);
}

function afterCall(ctx: BatchContext, entry: ComponentEntry<Signal>, index: number, conn: ConnectionHandle, db: Db, result: unknown): void | Promise<void> {
  if (ctx.recorder.pendingSubscriptions.length > 0) return checkSubscriptions(ctx, conn, db).then(() => respond(ctx, entry, index, conn, result));
  respond(ctx, entry, index, conn, result);
}

/**
 * The Signal's response goes to its channels. The caller of a call with `$id` that is in one of
 * them gets its copy tagged in its reply frame instead, and is left out of the publish.
 */
function respond(ctx: BatchContext, entry: ComponentEntry<Signal>, index: number, conn: ConnectionHandle, result: unknown): void {
  const response = asResponse(entry.name, result);
  if (!response || response.channels.length === 0) return;
  const text = itemText(entry.name, response.payload);
  const { recorder } = ctx;
  if (recorder.inCall(conn.id) && response.channels.some((channel) => conn.isSubscribed(channel))) {
    recorder.callItem(recorder.respond(index, text, response.channels, conn.id));
  } else recorder.respond(index, text, response.channels);
}

function asResponse(name: string, result: unknown): SignalResponse | undefined {
  if (result === undefined || result === null) return undefined;
  const r = result as Partial<SignalResponse>;
  if (typeof result !== 'object' || !('payload' in r) || !Array.isArray(r.channels) || !r.channels.every((c) => typeof c === 'string')) {
    throw new LexiconsError(ErrorCode.EXECUTION, `Signal [${name}] returned an invalid response: use this.response(payload, channels)`);
  }
  return r as SignalResponse;
}
