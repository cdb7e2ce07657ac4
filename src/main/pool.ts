/**
 * @module main/pool
 * The worker pool: piscina with minThreads = maxThreads = N, running {@link Job}s.
 *
 * - Every job gets a progress slot (workers/progress.ts). A watchdog reads the slots (never
 *   blocking) and aborts a job whose user code has run longer than `executionTimeoutMs`:
 *   piscina terminates that worker and starts a fresh one.
 * - A worker that exits (terminated, crashed) may have died holding the store's commit lock:
 *   its threadId (learned from piscina's `workerCreate` event) is passed to `onThreadExit`
 *   once the thread has really exited, so the runtime can call `store.releaseIfHeldBy`.
 * - Each worker has a heap limit (`resourceLimits.maxOldGenerationSizeMb`): a Signal allocating
 *   without bound kills only its own thread (ERR_WORKER_OUT_OF_MEMORY), never the process.
 * - A failed job rejects with a {@link JobFailure} naming the unit that was running.
 * - A cluster node runs {@link CLUSTER_JOBS_PER_WORKER} jobs at once per worker: a job waits a
 *   Redis round trip for its commit record's decision, and the worker runs others meanwhile
 *   (docs/cluster.md "Cost"). A single node keeps one per worker (its commits are local and
 *   synchronous). With several jobs on a worker, one job's time limit (or a crash) terminates the
 *   others too: their records in flight are waited for before their failure is reported
 *   (main/job-commits.ts), and a job that failed only because its thread was terminated for
 *   another job's time limit says so (`collateral`).
 */
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import { isControlHandOver } from '../workers/control-plane.js';
import type { Job, JobInput, JobResult, WorkerInit } from '../job-contract.js';
import { createProgressBuffer, ProgressReader, type CommitTicket } from '../workers/progress.js';
import type { ClusterCommitResult } from '../workers/control-plane.js';
import { JobCommits } from './job-commits.js';
import type { LogFn } from './log.js';

/**
 * Why a job did not produce a result, which unit was running (-1: none had started), and how many
 * leading units were already committed (`done`: a batch re-run one transaction per call, or a
 * worker that died after its batch's commit; workers/progress.ts): those must not run again.
 */
export class JobFailure extends LexiconsError {
  readonly unit: number;
  readonly done: number;
  /**
   * The job was innocent: its thread was terminated for another job's time limit (cluster mode:
   * several jobs per worker), and none of its units is partly committed: the units from `done` on
   * are put back, none is guilty (main/dispatch-failure.ts).
   */
  readonly collateral: boolean;
  constructor(code: typeof ErrorCode.TIMEOUT | typeof ErrorCode.INTERNAL, message: string, unit: number, cause?: unknown, done = 0, collateral = false) {
    super(code, message, { cause });
    this.unit = unit;
    this.done = done;
    this.collateral = collateral;
  }
}

/** Jobs a cluster node's worker runs at once (one waits for its commit's decision while others run). */
export const CLUSTER_JOBS_PER_WORKER = 4;

/** What the dispatcher and the task scheduler need of the pool (a test may pass a stand-in). */
export type JobRunner = Pick<WorkerPool, 'run'>;

export interface PoolOptions {
  workers: number;
  init: Omit<WorkerInit, 'progress'>;
  executionTimeoutMs: number;
  /** Old-generation heap limit of each worker in MiB (`limits.workerMemoryMb`). */
  workerMemoryMb: number;
  log: LogFn;
  onThreadExit: (threadId: number) => void;
  onControlPort: (port: MessagePort, threadId: number) => void;
}

const SLOTS = 1024;

/**
 * The piscina entry: the sibling `workers/worker.js` in the compiled package. Running from
 * TypeScript sources (an app importing lexicons' src through tsx), a worker thread cannot load a
 * .ts entry before tsx is registered in it (`--import` in a worker's execArgv is ignored), so a
 * small JS bootstrap registers tsx and loads `worker.ts`.
 */
function workerFile(): string {
  const ts = extname(fileURLToPath(import.meta.url)) === '.ts';
  return fileURLToPath(new URL(ts ? '../workers/ts-bootstrap.mjs' : '../workers/worker.js', import.meta.url));
}

export class WorkerPool {
  readonly #piscina: Piscina;
  readonly #progress: ProgressReader;
  readonly #free: number[] = [];
  readonly #active = new Map<number, AbortController>();
  readonly #commits: JobCommits;
  #jobs = 0;
  /** Jobs per worker: 1, or {@link CLUSTER_JOBS_PER_WORKER} on a cluster node. */
  readonly #perWorker: number;
  /**
   * The errors the jobs of a thread terminated for a time limit failed with (one error object
   * for every job of that thread): the others of those jobs are innocent (`collateral`).
   */
  readonly #stopped = new WeakSet<object>();
  readonly #timeoutMs: number;
  readonly #memoryMb: number;
  readonly #log: LogFn;
  #watchdog: NodeJS.Timeout | null = null;
  #closing = false;

  constructor(options: PoolOptions) {
    const progress = createProgressBuffer(SLOTS);
    this.#progress = new ProgressReader(progress);
    this.#commits = new JobCommits(this.#progress);
    for (let i = SLOTS - 1; i >= 0; i--) this.#free.push(i);
    this.#timeoutMs = options.executionTimeoutMs;
    this.#memoryMb = options.workerMemoryMb;
    this.#log = options.log;
    this.#perWorker = options.init.cluster ? CLUSTER_JOBS_PER_WORKER : 1;
    const filename = workerFile();
    this.#piscina = new Piscina({
      filename,
      minThreads: options.workers,
      maxThreads: options.workers,
      concurrentTasksPerWorker: this.#perWorker,
      // The young generation stays at V8's default; only the old generation (where a runaway
      // hoard ends up) is capped. Exceeding it terminates that worker alone.
      resourceLimits: { maxOldGenerationSizeMb: this.#memoryMb },
      workerData: { ...options.init, progress } satisfies WorkerInit,
    });
    this.#piscina.on('workerCreate', (w: { id: number }) => {
      const threadId = w.id;
      const worker = this.#piscina.threads.find((t) => t.threadId === threadId);
      worker?.once('exit', (code: number) => {
        options.onThreadExit(threadId);
        if (!this.#closing) this.#log('WORKER-ERROR', { message: `worker thread ${threadId} exited (code ${code}); a new one replaces it`, threadId });
      });
    });
    this.#piscina.on('message', (message: unknown) => {
      if (isControlHandOver(message)) options.onControlPort(message.port, message.threadId);
    });
    this.#piscina.on('error', (err: unknown) => {
      this.#log('WORKER-ERROR', { message: messageOf(err), stack: (err as Error)?.stack });
    });
  }

  get threads(): number {
    return this.#piscina.threads.length;
  }

  /** Jobs waiting in piscina's queue (not yet on a worker). */
  get queueSize(): number {
    return this.#piscina.queueSize;
  }

  get running(): number {
    return this.#active.size;
  }

  async run<R extends JobResult>(input: JobInput): Promise<R> {
    const slot = this.#free.pop();
    if (slot === undefined) throw new LexiconsError(ErrorCode.LIMIT, `more than ${SLOTS} pool jobs at once`);
    this.#progress.reset(slot);
    const jobId = ++this.#jobs;
    this.#commits.open(slot, jobId);
    const controller = new AbortController();
    this.#active.set(slot, controller);
    this.#startWatchdog();
    try {
      // piscina runs an abortable task only on an idle worker and gives that worker nothing else:
      // with several jobs per worker, the watchdog terminates the job's thread itself (#check).
      const options = this.#perWorker === 1 ? { signal: controller.signal } : {};
      return (await this.#piscina.run({ ...input, slot, jobId } as Job, options)) as R;
    } catch (err) {
      // Marked before the first await: the other jobs of the thread, rejected with the same
      // error in the same turn, check it only after theirs.
      if (controller.signal.aborted && typeof err === 'object' && err !== null) this.#stopped.add(err);
      // No longer watched: the thread is gone or going. Its records still in the commit stream
      // (cluster mode) are decided first: one that commits stores its units into the slot.
      this.#active.delete(slot);
      const committed = await this.#commits.close(slot);
      const unit = this.#progress.unit(slot);
      // Read after the abort was claimed or the thread exited, and after the job's records were
      // decided: every count the worker or the main thread stored is seen.
      const done = this.#progress.done(slot);
      if (controller.signal.aborted) {
        throw new JobFailure(ErrorCode.TIMEOUT, `Execution timed out after ${this.#timeoutMs} ms (limits.executionTimeoutMs)`, unit, err, done);
      }
      if ((err as { code?: unknown })?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new JobFailure(ErrorCode.INTERNAL, `Internal error: worker out of memory (over ${this.#memoryMb} MiB, limits.workerMemoryMb); it was replaced`, unit, err, done);
      }
      // Innocent (its thread terminated for another job's time limit) and no unit partly
      // committed (a call of the running unit, re-run one transaction per call): every unit from
      // `done` on may run again.
      if (typeof err === 'object' && err !== null && this.#stopped.has(err) && !(committed >= 0 && committed === unit)) {
        throw new JobFailure(ErrorCode.INTERNAL, 'Internal error: worker stopped (another job on its thread exceeded limits.executionTimeoutMs)', unit, err, done, true);
      }
      throw new JobFailure(ErrorCode.INTERNAL, `Internal error: worker failed (${messageOf(err)})`, unit, err, done);
    } finally {
      this.#active.delete(slot);
      this.#commits.release(slot);
      this.#free.push(slot);
      if (this.#active.size === 0) this.#stopWatchdog();
    }
  }

  /**
   * Cluster mode: a worker's commit request for the job `ticket` names; `send` appends the
   * record and resolves with its decision (main/job-commits.ts).
   */
  commit(ticket: CommitTicket, send: () => Promise<ClusterCommitResult>): Promise<ClusterCommitResult> {
    return this.#commits.request(ticket, send);
  }

  #startWatchdog(): void {
    if (this.#watchdog) return;
    const period = Math.max(10, Math.min(500, Math.floor(this.#timeoutMs / 10)));
    this.#watchdog = setInterval(() => this.#check(), period);
    this.#watchdog.unref();
  }

  #stopWatchdog(): void {
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }

  #check(): void {
    const now = Date.now();
    for (const [slot, controller] of this.#active) {
      if (!controller.signal.aborted && this.#progress.tryAbort(slot, now, this.#timeoutMs)) {
        controller.abort(new LexiconsError(ErrorCode.TIMEOUT, 'execution time limit'));
        // Several jobs per worker: the job's thread (it started the job: its user code ran) is
        // terminated here; piscina then fails every job of it with one error and replaces it.
        if (this.#perWorker > 1) {
          const thread = this.#progress.thread(slot);
          void this.#piscina.threads.find((t) => t.threadId === thread)?.terminate();
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#stopWatchdog();
    await this.#piscina.close();
  }

  async destroy(): Promise<void> {
    this.#closing = true;
    this.#stopWatchdog();
    await this.#piscina.destroy();
  }
}
