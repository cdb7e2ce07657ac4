/**
 * @module workers/execute-live
 * Runs a live-query refresh job in a worker (docs/live-queries.md): the live queries of one
 * connection, in ONE ordinary transaction at the latest commit (its snapshot S), so the client's
 * queries all move to S together. A query none of whose reads a commit after its last result
 * wrote (the key stamps and table last-write ids, storage/since.ts) keeps that result, which holds
 * at S too, without being evaluated. The others run `query` with their checked arguments, `db` and
 * the connection's `ws`; a declarative form whose spec did not change is advanced from the rows
 * written since its state (rows: workers/live-incremental.ts; aggregates: live-aggregate.ts),
 * else evaluated whole; the result is diffed against the state the main thread sent
 * (workers/live-diff.ts). What the queries read is what the refresh depends on: the main thread
 * refreshes the connection again only when a commit writes one of those keys or tables. A query
 * body must not write: one that does ends with `LIVE_WRITE` (its writes undone); the transaction
 * is always aborted (effects on `ws` are dropped).
 */
import { isLiveSpec, MAX_LIVE_ROWS, type AggregateSpec, type LiveQuery, type LiveSpec, type RowsSpec } from '../live-query.js';
import { ErrorCode, LexiconsError, SignalError } from '../errors.js';
import type { LiveJob, LiveJobQuery, LiveOutcome, LivePaths, LiveResult, LiveState } from '../live-job-contract.js';
import { liveErrorItem, wireCodeOf } from '../protocol.js';
import type { WrittenKeys } from '../storage/api.js';
import type { ChangesSince } from '../storage/since.js';
import type { Transaction } from '../storage/transaction.js';
import { WireCode } from '../wire.js';
import { checkArgs } from './args.js';
import { publicMessage } from './batch-context.js';
import { ConnectionHandle } from './handles.js';
import { advanceGroups } from './live-aggregate.js';
import { changeItem, evaluate, plainRow } from './live-diff.js';
import { advanceRows, filterTest, MAX_INCREMENTAL_PKS } from './live-incremental.js';
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
  const progress = new ProgressWriter(app.progress, job.slot, job.jobId);
  // An ordinary transaction at the latest commit; Transaction (not just Txn) for its reads.
  const txn = app.store.begin() as Transaction;
  const refresh: Refresh = { txn, job, since: txn.changesSince(), deps: new Deps(), paths: { skipped: 0, incremental: 0, fallback: 0, rerun: 0 } };
  const recorder = new Recorder(app.view.forJob());
  const ws = new ConnectionHandle(job.connection, recorder);
  const outcomes: LiveOutcome[] = [];
  let errors = 0;
  try {
    for (let i = 0; i < job.queries.length; i++) {
      const outcome = await runQuery(app, refresh, ws, job.queries[i]!, i, progress);
      if (!outcome.ok) errors++;
      outcomes.push(outcome);
    }
    const { deps, paths } = refresh;
    return { effects: [], logs: recorder.logs, stats: { calls: job.queries.length, errors, attempts: 1 }, snapshot: txn.snapshot, outcomes, deps: { tables: [...deps.tables], keys: [...deps.keys] }, paths };
  } finally {
    txn.abort();
  }
}

/** One refresh: its transaction and job, what changed since the states, what its queries read, how they were evaluated. */
interface Refresh {
  txn: Transaction;
  job: LiveJob;
  since: ChangesSince;
  deps: Deps;
  paths: LivePaths;
}

async function runQuery(app: WorkerApp, r: Refresh, ws: ConnectionHandle, q: LiveJobQuery, index: number, progress: ProgressWriter): Promise<LiveOutcome> {
  const { txn, deps } = r;
  const entry = app.live.get(q.name);
  if (entry === undefined) return { ok: false, item: liveErrorItem(q.id, WireCode.UNKNOWN_LIVE_QUERY, `No live query [${q.name}]`) };
  if (q.state?.deps !== undefined && !r.since.touched(q.state.deps, r.job.at)) {
    // Nothing it read was written since its last result: that result holds at this snapshot too.
    r.paths.skipped++;
    deps.add(q.state.deps);
    return { ok: true, state: undefined, item: undefined };
  }
  progress.enter(index);
  const mark = txn.savepoint();
  try {
    txn.takeReads();
    const args = checkArgs(entry.args, q.args);
    let out = (entry.instance as LiveQuery).query({ ...args, db: txn.db, ws });
    if (isThenable(out)) out = await out;
    if (txn.savepoint() !== mark) {
      throw new SignalError(WireCode.LIVE_WRITE, `live query [${q.name}] wrote: a live query only reads (write in a Signal)`);
    }
    const own = txn.takeReads(); // what the body itself read
    const state = isLiveSpec(out) ? specState(r, out, q.state) : evaluate(txn.db, out);
    if (!isLiveSpec(out)) r.paths.rerun++;
    const read = state.specDeps ?? txn.takeReads();
    state.deps = { tables: [...new Set([...own.tables, ...read.tables])], keys: [...new Set([...own.keys, ...read.keys])] };
    deps.add(state.deps);
    return { ok: true, state, item: changeItem(q.id, txn.snapshot, q.state, state) };
  } catch (err) {
    if (err instanceof LexiconsError && err.code === ErrorCode.TIMEOUT) throw err;
    txn.rollbackTo(mark); // what a failed body wrote must not show to the next queries
    return { ok: false, item: liveErrorItem(q.id, wireCodeOf(err), publicMessage(err)) };
  } finally {
    progress.leave();
  }
}

/**
 * The pks written in table `tid` by the commits after the states' commit up to the snapshot, or
 * undefined when not known: the main thread's list covers the commits up to `job.upTo` that touched
 * the connection; the rest (commits whose results had not reached the main thread) are read from
 * the table's tail (storage/since.ts), bounded.
 */
function writtenSince(r: Refresh, tid: number): string[] | undefined {
  const { job, txn, since } = r;
  const reported = job.changed === null ? undefined : (job.changed[tid] ?? []);
  if (reported !== undefined && txn.snapshot <= job.upTo) return reported;
  const tail = since.writtenPks(tid, reported === undefined ? job.at : Math.max(job.at, job.upTo), MAX_INCREMENTAL_PKS);
  if (tail === undefined) return undefined;
  return reported === undefined ? tail : [...reported, ...tail];
}

/** A declarative form: advanced from the written rows when it can be, else read whole; with its spec, table epoch and what reading it read. */
function specState(r: Refresh, spec: LiveSpec, prev: LiveState | null): LiveState {
  const { txn, since } = r;
  const text = JSON.stringify(spec);
  const tid = txn.tableId(spec.table);
  const epoch = since.epoch(tid);
  if (prev !== null && prev.spec === text && prev.specDeps !== undefined) {
    const written = prev.epoch === epoch ? writtenSince(r, tid) : undefined;
    let next: LiveState | undefined;
    if (written !== undefined && spec['~live'] === 'rows' && prev.form === 'rows') {
      const rows = advanceRows(txn.db, spec as RowsSpec<unknown>, prev.rows, written, plainRow);
      if (rows !== undefined && rows.length <= MAX_LIVE_ROWS) next = { form: 'rows', rows };
    } else if (written !== undefined && spec['~live'] === 'aggregate' && prev.form === 'groups' && prev.acc !== undefined) {
      const test = filterTest(txn.db, spec.table, spec.filters);
      const at = r.job.at;
      const groups = test === undefined ? undefined : advanceGroups(txn.db, spec as AggregateSpec, { groups: prev.groups, acc: prev.acc }, written, { matches: test.matches, before: (pk) => since.rowAt(tid, pk, at), after: (pk) => since.rowAt(tid, pk, txn.snapshot) });
      if (groups !== undefined) next = { form: 'groups', ...groups };
    }
    txn.takeReads(); // reads of the written rows: the spec's dependencies stay those of its last whole read
    if (next !== undefined) {
      r.paths.incremental++;
      return { ...next, spec: text, specDeps: prev.specDeps, epoch };
    }
    // A top-k the writes reach is read again by design; anything else here lacked the written rows.
    if (written !== undefined && spec['~live'] === 'rows' && spec.limit !== undefined) r.paths.rerun++;
    else r.paths.fallback++;
  } else r.paths.rerun++;
  const state = evaluate(txn.db, spec);
  return { ...state, spec: text, specDeps: txn.takeReads(), epoch };
}
