/**
 * @module workers/worker
 * The piscina entry: one module instance per pool thread. At load it opens the control plane,
 * imports the app module (`workerData.appPath`), compiles its schema, and attaches to the shared
 * store once the main thread has opened the data folder (its handles come over the control plane,
 * so this thread's start-up overlaps the load); then every pool run is a {@link Job} (a batch of
 * units, a Task, or a hook). A single node runs one job at a time per thread; a cluster node
 * several (main/pool.ts), interleaved at their awaits (chiefly the commit's round trip to the
 * main thread): every job's state is its own (recorder, progress writer, channel view, stepper).
 */
import { threadId, workerData } from 'node:worker_threads';
import { ErrorCode, isLexiconsError, LexiconsError, messageOf } from '../errors.js';
import type { CommitResult } from '../storage/api.js';
import { withCluster } from '../storage/cluster-record.js';
import type { Transaction } from '../storage/transaction.js';
import type { TaskClass } from '../components.js';
import { componentName } from '../components.js';
import { appSchema } from '../server.js';
import { SharedStore, type StoreHandles } from '../storage/store.js';
import { Wal, type WalHandles } from '../storage/wal.js';
import { loadApp, registerTypeScript } from './app-loader.js';
import { connectControl, receiveStore } from './control-plane.js';
import { batchFailureEffects, runBatch } from './execute-batch.js';
import { createWorkerApp } from './worker-app.js';
import type { CommitTicket } from './progress.js';
import type { BatchResult, CommitWrites, Job, JobResult, TaskResult, WorkerInit } from '../job-contract.js';
import { runLive } from './execute-live.js';
import { runHook, runTask } from './execute-task.js';

const init = workerData as WorkerInit;
const { control, port } = connectControl();
if (init.typescript) await registerTypeScript();
const { server } = await loadApp(init.appPath, init.exportName);
const shared = await receiveStore(control, port);
const schema = appSchema(server.components);
const store = SharedStore.attach(init.cluster ? withCluster(schema) : schema, shared.handles as StoreHandles);
// The channels' history policies: txn.publish keeps what they say, commits trim by them.
store.historyPolicy = server.components.channelRules.historyPolicy;
// Every commit of this thread is appended to the write-ahead log before it is published.
const wal = Wal.attach(store, shared.wal as WalHandles);
// The commits of this thread, handed to the main thread with the next job result (live queries).
// Only a single node commits in its workers, one job at a time per worker; a cluster node's
// commits are applied on its main thread (which reports them itself), so this stays empty there
// while several jobs share the thread.
let commits: CommitWrites[] = [];
store.onCommit = (changes) => {
  if (changes.written !== undefined) commits.push({ id: changes.commitId, ...changes.written });
};
// Cluster mode: a commit is a record in the node's commit stream, decided by its applier.
// Other jobs of this thread run while one waits for its decision (main/pool.ts): the ticket tells
// the main thread which job the record is of (workers/progress.ts "Cluster mode").
if (init.cluster) store.remoteCommit = (txn, ticket) => commitThroughStream(txn as Transaction, ticket as CommitTicket);

async function commitThroughStream(txn: Transaction, ticket: CommitTicket): Promise<CommitResult> {
  const snapshot = txn.snapshot;
  const record = txn.exportCommit();
  if (record === null) return { ok: true, commitId: snapshot, changes: { commitId: snapshot, tables: {} }, publications: [] };
  const result = await control.commit(JSON.stringify(record), ticket);
  if (!result.ok && result.reason === 'unavailable') throw new LexiconsError(ErrorCode.IO, result.message);
  return result as CommitResult;
}

const tasks = new Map<string, TaskClass>(server.components.tasks.map((cls) => [componentName(cls), cls]));
const app = createWorkerApp(server, store, { progress: init.progress, maxCallsPerFrame: init.maxCallsPerFrame, maxRecoveredPublications: init.maxRecoveredPublications, debug: init.debug }, control);

async function runJob(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'batch':
      return runBatch(app, job);
    case 'task':
      return runTask(app, tasks, job);
    case 'hook':
      return runHook(app, job);
    case 'live':
      return runLive(app, job);
  }
}

/**
 * When the log cannot take or make durable this job's commits, nothing is acknowledged: the
 * effects are dropped and every caller gets `Not saved: ...`. A refused append published nothing;
 * after a failed fsync the commits are visible in memory (docs/durability.md "Limits"). Units are
 * not re-run.
 */
function durabilityFailure(job: Job, result: JobResult, err: unknown): JobResult {
  if (job.kind === 'live') throw err; // a refresh shows only durable commits: it fails, the main thread retries it
  const message = `Not saved: ${messageOf(err)}`;
  const logs = [...result.logs, { status: 'ERROR' as const, data: { message } }];
  if (job.kind !== 'batch') return { ...(result as TaskResult), ok: false, effects: [], logs };
  return { ...(result as BatchResult), effects: batchFailureEffects(job, message), packed: undefined, logs };
}

export default async function handle(job: Job): Promise<JobResult> {
  const result = await settle(job);
  if (commits.length > 0) {
    result.commits = commits;
    commits = [];
  }
  return result;
}

async function settle(job: Job): Promise<JobResult> {
  const started = performance.now();
  let result: JobResult;
  try {
    result = await runJob(job);
  } catch (err) {
    // A commit the log could not take (disk full, I/O error, the log disabled) was refused before
    // anything was published: every caller of the batch gets the error; the worker is fine.
    if (job.kind === 'batch' && isLexiconsError(err, ErrorCode.IO)) return durabilityFailure(job, { effects: [], logs: [], stats: { calls: 0, errors: job.unitHeads.length, attempts: 1 } }, err);
    throw err;
  }
  const durableStarted = performance.now();
  try {
    wal.awaitDurable(); // the acknowledgement: the result leaves the worker only once durable
  } catch (err) {
    return durabilityFailure(job, result, err);
  }
  if (job.kind === 'batch') {
    const now = performance.now();
    result.stats.durableMs = now - durableStarted;
    result.stats.runMs = now - started;
    result.stats.thread = threadId;
  }
  return result;
}
