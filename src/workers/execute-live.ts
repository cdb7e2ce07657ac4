/**
 * @module workers/execute-live
 * Runs a live-query refresh job in a worker (docs/live-queries.md): every live query of one
 * connection, in ONE ordinary transaction at the latest commit (its snapshot S), so the client's
 * queries all move to S together. Each query's `query` runs with its checked arguments, `db` and
 * the connection's `ws`; a declarative rows form whose spec did not change is advanced from the
 * rows written since its state when the main thread knew every commit up to S
 * (workers/live-incremental.ts), else evaluated whole; the result is diffed against the state the
 * main thread sent (workers/live-diff.ts). What the queries read is what the refresh depends on:
 * the main thread refreshes the connection again only when a commit writes one of those keys or
 * tables. Nothing is written: the transaction is aborted (writes are discarded, effects on `ws`
 * dropped).
 */
import { isLiveSpec, MAX_LIVE_ROWS, type LiveQuery, type RowsSpec } from '../live-query.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { LiveJob, LiveJobQuery, LiveOutcome, LiveResult, LiveState } from '../live-job-contract.js';
import { liveErrorItem, wireCodeOf } from '../protocol.js';
import type { WrittenKeys } from '../storage/api.js';
import type { Transaction } from '../storage/transaction.js';
import { WireCode } from '../wire.js';
import { checkArgs } from './args.js';
import { publicMessage } from './batch-context.js';
import { ConnectionHandle } from './handles.js';
import { changeItem, evaluate, plainRow } from './live-diff.js';
import { advanceRows } from './live-incremental.js';
import { ProgressWriter } from './progress.js';
import { Recorder } from './recorder.js';
import { isThenable } from './steppers.js';
import type { WorkerApp } from './worker-app.js';

/** What the refresh read, over all its queries. */
class Deps {
  readonly tables = new Set<number>();
  readonly keys = new Set<number>();
  add(deps: WrittenKeys | undefined): void {
    if (deps === undefined) return;
    for (const t of deps.tables) this.tables.add(t);
    for (const k of deps.keys) this.keys.add(k);
  }
}

export async function runLive(app: WorkerApp, job: LiveJob): Promise<LiveResult> {
  const progress = new ProgressWriter(app.progress, job.slot);
  // An ordinary transaction at the latest commit; Transaction (not just Txn) for its reads.
  const txn = app.store.begin() as Transaction;
  const recorder = new Recorder(app.view);
  const ws = new ConnectionHandle(job.connection, recorder);
  const outcomes: LiveOutcome[] = [];
  const deps = new Deps();
  // The written pks cover every commit up to the snapshot only if the main thread knew them all.
  const changed = job.changed !== null && txn.snapshot <= job.upTo ? job.changed : null;
  let errors = 0;
  try {
    for (let i = 0; i < job.queries.length; i++) {
      const outcome = await runQuery(app, txn, ws, job.queries[i]!, i, progress, changed, deps);
      if (!outcome.ok) errors++;
      outcomes.push(outcome);
    }
    return { effects: [], logs: recorder.logs, stats: { calls: job.queries.length, errors, attempts: 1 }, snapshot: txn.snapshot, outcomes, deps: { tables: [...deps.tables], keys: [...deps.keys] } };
  } finally {
    txn.abort();
  }
}

async function runQuery(app: WorkerApp, txn: Transaction, ws: ConnectionHandle, q: LiveJobQuery, index: number, progress: ProgressWriter, changed: Record<number, string[]> | null, deps: Deps): Promise<LiveOutcome> {
  const entry = app.live.get(q.name);
  if (entry === undefined) return { ok: false, item: liveErrorItem(q.id, WireCode.UNKNOWN_LIVE_QUERY, `No live query [${q.name}]`) };
  progress.enter(index);
  try {
    txn.takeReads();
    const args = checkArgs(entry.args, q.args);
    let out = (entry.instance as LiveQuery).query({ ...args, db: txn.db, ws });
    if (isThenable(out)) out = await out;
    const own = txn.takeReads(); // what the body itself read
    const state = isLiveSpec(out) && out['~live'] === 'rows' ? rowsState(txn, out as RowsSpec<unknown>, q.state, changed) : evaluate(txn.db, out);
    deps.add(own);
    deps.add(state.form === 'rows' && state.specDeps !== undefined ? state.specDeps : txn.takeReads());
    return { ok: true, state, item: changeItem(q.id, txn.snapshot, q.state, state) };
  } catch (err) {
    if (err instanceof LexiconsError && err.code === ErrorCode.TIMEOUT) throw err;
    return { ok: false, item: liveErrorItem(q.id, wireCodeOf(err), publicMessage(err)) };
  } finally {
    progress.leave();
  }
}

/** A rows form: advanced from the written rows when it can be, else read whole; with its spec and what reading it read. */
function rowsState(txn: Transaction, spec: RowsSpec<unknown>, prev: LiveState | null, changed: Record<number, string[]> | null): LiveState {
  const text = JSON.stringify(spec);
  if (changed !== null && prev?.form === 'rows' && prev.spec === text && prev.specDeps !== undefined) {
    const rows = advanceRows(txn.db, spec, prev.rows, changed[txn.tableId(spec.table)] ?? [], plainRow);
    txn.takeReads(); // reads by pk: the spec's dependencies stay those of its last whole read
    if (rows !== undefined && rows.length <= MAX_LIVE_ROWS) return { form: 'rows', rows, spec: text, specDeps: prev.specDeps };
  }
  const state = evaluate(txn.db, spec);
  return state.form === 'rows' ? { ...state, spec: text, specDeps: txn.takeReads() } : state;
}
