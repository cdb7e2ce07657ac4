/**
 * @module main/dispatch-failure
 * What happens to the units of a batch whose job failed (time limit, worker crash), and to the
 * `$key`s of a batch's calls (main/sessions.ts).
 *
 * A job that failed tells, in its {@link JobFailure}, which unit was running (`unit`, the guilty
 * one) and how many leading units were already committed (`done`, workers/progress.ts: nonzero
 * only for a batch re-run one transaction per call after a unique violation, or a worker that
 * died after its batch's commit). Each unit then:
 * - was committed (index < `done`): it is never run again (at most once). Its reply, and whatever
 *   else it did outside the store (broadcasts, sends, channel changes), died with the worker: its
 *   callers get `WORKER_FAILED` with {@link lostReplyMessage}, its keyed calls are settled with
 *   that error (a retry with the same `$key` gets it instead of running again), a connection
 *   attempt is refused (its onConnect may have written);
 * - is the guilty unit, or no unit had started (every unit fails, so that a deterministic failure
 *   cannot loop): its callers get the failure (`TIMEOUT`, `WORKER_FAILED`); except in a
 *   `collateral` failure (cluster mode: the job's thread was terminated for ANOTHER job's time
 *   limit, main/pool.ts), where no unit is guilty;
 * - else: it is put back, in order, at the front of its connection's queue (nothing of it ran to
 *   a commit).
 */
import { ErrorCode, messageOf } from '../errors.js';
import { errorItemText } from '../protocol.js';
import { WireCode } from '../wire.js';
import { failFrame } from './call-replies.js';
import { UNIT_CONNECT, UNIT_FRAME, type Unit } from '../job-contract.js';
import type { SocketConnection } from './socket-connection.js';
import { completeUpgrade, rejectConnection } from './effects.js';
import type { Hub } from './hub.js';
import { JobFailure } from './pool.js';

export interface Batch {
  connections: SocketConnection[];
  units: Unit[];
  /** Connection index per unit. */
  owners: number[];
}

/** The message of the callers of a call that was committed but whose job failed before it replied. */
export function lostReplyMessage(reason: string): string {
  return `The call was saved but its reply was lost: its worker stopped before replying (${reason})`;
}

/** Keys of the batch's calls that got no outcome (their job did not commit them) are released (main/sessions.ts). */
export function releaseKeys(hub: Hub, batch: Batch, only?: ReadonlySet<Unit>): void {
  for (let i = 0; i < batch.units.length; i++) {
    const unit = batch.units[i]!;
    if (unit.kind !== UNIT_FRAME || unit.keys === undefined || (only !== undefined && !only.has(unit))) continue;
    const session = batch.connections[batch.owners[i]!]!.session;
    if (session !== null) hub.sessions.release(session, unit.keys);
  }
}

/**
 * Answers or re-queues the units of a failed batch (see the module comment). The caller releases
 * the batch's connections afterwards.
 */
export function failBatch(hub: Hub, batch: Batch, err: unknown): void {
  const failure = err instanceof JobFailure ? err : new JobFailure(ErrorCode.INTERNAL, `Internal error: ${messageOf(err)}`, -1, err);
  const { metrics, log } = hub;
  if (failure.code === ErrorCode.TIMEOUT) metrics.timeouts++;
  else metrics.workerFailures++;
  // A worker that died after its commit took that commit's history publications with it, and
  // what the commit wrote (live queries).
  hub.delivery.suspect();
  hub.live.suspect();
  const done = Math.min(Math.max(0, failure.done), batch.units.length);
  const guilty = !failure.collateral && failure.unit >= 0 && failure.unit < batch.units.length ? failure.unit : -1;
  // No unit had started: every unit fails (a deterministic failure must not loop), unless the job
  // was collateral (its thread terminated for another job's time limit): then none is guilty.
  const failAll = guilty === -1 && !failure.collateral;
  log(failure.code === ErrorCode.TIMEOUT ? 'SIGNAL-ERROR' : 'WORKER-ERROR', {
    code: failure.code,
    message: failure.message,
    units: batch.units.length,
    guiltyUnit: guilty,
    ...(failure.collateral ? { collateral: true } : {}),
    connection: guilty >= 0 ? batch.connections[batch.owners[guilty]!]!.id : undefined,
    ...(done > 0 ? { committedUnits: done } : {}),
  });
  const back = new Map<SocketConnection, Unit[]>();
  const failed = new Set<Unit>();
  batch.units.forEach((unit, i) => {
    const conn = batch.connections[batch.owners[i]!]!;
    if (i < done) savedUnit(hub, conn, unit, failure);
    else if (failAll || i === guilty) {
      failed.add(unit);
      failUnit(hub, conn, unit, failure);
    } else {
      let list = back.get(conn);
      if (!list) back.set(conn, (list = []));
      list.push(unit);
    }
  });
  const now = performance.now();
  for (const [conn, list] of back) {
    conn.queue.unshift(...list);
    conn.queuedAt.unshift(...list.map(() => now));
  }
  releaseKeys(hub, batch, failed);
}

function failUnit(hub: Hub, conn: SocketConnection, unit: Unit, failure: JobFailure): void {
  hub.metrics.errorsTotal++;
  const code = failure.code === ErrorCode.TIMEOUT ? WireCode.TIMEOUT : WireCode.WORKER_FAILED;
  if (unit.kind === UNIT_FRAME) failFrame(conn, unit.text, failure.message, code);
  else if (unit.kind === UNIT_CONNECT) {
    completeUpgrade(conn);
    rejectConnection(hub, conn, failure.message, code);
  }
}

/** A unit the failed job had committed: answered with the lost-reply error, never re-run. */
function savedUnit(hub: Hub, conn: SocketConnection, unit: Unit, failure: JobFailure): void {
  hub.metrics.errorsTotal++;
  const message = lostReplyMessage(failure.message);
  if (unit.kind === UNIT_FRAME) {
    failFrame(conn, unit.text, message, WireCode.WORKER_FAILED);
    // The keyed calls are settled with that error: a retry with the same $key must not run them again.
    if (unit.keys !== undefined && conn.session !== null) {
      const items = [errorItemText([message], WireCode.WORKER_FAILED)];
      for (const key of unit.keys) hub.sessions.complete(conn.session, key, items);
    }
  } else if (unit.kind === UNIT_CONNECT) {
    // Admitted in the worker, but the admission (and what onConnect did besides writing) was lost.
    completeUpgrade(conn);
    rejectConnection(hub, conn, message, WireCode.WORKER_FAILED);
  }
  // A disconnection needs no answer: its onDisconnect ran.
}
