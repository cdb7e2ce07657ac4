/**
 * @module workers/progress
 * Progress slots: how the main thread learns, without blocking and without a message round trip,
 * which unit of a pool job a worker is executing and since when, and how it aborts a job safely.
 *
 * One SharedArrayBuffer, viewed as a BigInt64Array, holds `kSlotWords` words per slot:
 *
 * ```
 * [slot * kSlotWords + kUnitField]   index of the unit being executed (-1: none yet)
 * [slot * kSlotWords + kStartField]  Date.now() when the current user call started
 * [slot * kSlotWords + kStateField]  kFramework (0) | kUser (1) | kAborted (2)
 * [slot * kSlotWords + kDoneField]   units of the job already committed: the first N (0: none)
 * [slot * kSlotWords + kThreadField] threadId of the worker running the job (-1: not started)
 * ```
 *
 * Why: an endless-loop Signal cannot be interrupted, only its thread terminated (piscina's abort
 * signal; on a cluster node, whose workers run several jobs, the pool terminates the thread named
 * in kThreadField itself: piscina never gives an abortable task a busy worker). The main thread's watchdog aborts only jobs whose *user code* exceeded
 * `limits.executionTimeoutMs` (a worker waiting for the store lock held by a hung worker is in
 * framework code and not blamed), and reads the unit index to fail only the guilty unit and
 * re-queue the others.
 *
 * Re-queuing is only correct if the aborted job cannot have committed. Termination is
 * asynchronous, so the watchdog claims the abort with a compare-and-swap kUser → kAborted, and
 * the worker leaves user code with a compare-and-swap kUser → kFramework: exactly one wins. A
 * worker that finds its slot aborted never commits ({@link ProgressWriter.checkNotAborted} runs
 * right before every commit, always after a `leave()`). Atomics.load/store/compareExchange never
 * block, so the socket thread may use them.
 *
 * A batch that commits once (the usual case) has committed nothing when it fails. But a batch
 * re-run with one transaction per call (after a unique violation, workers/execute-batch.ts)
 * commits each call at once, and a worker can die after a batch's commit, before its result got
 * out: re-running those units would run committed calls twice. So the worker publishes, in
 * kDoneField, how many leading units are finished and committed ({@link ProgressWriter.done}):
 * units run in order, so a count is enough. Why it is exact: the worker stores the count after a
 * unit's last commit and BEFORE it enters user code again (the next unit's `enter`); the watchdog
 * can only abort a job in user code (the kUser → kAborted compare-and-swap), and Atomics are
 * sequentially consistent, so a main thread that read kAborted, or saw the thread exit, reads
 * every count stored before it. The unit running at the failure may have committed some of its
 * calls (a frame with several calls, re-run per call): it is the guilty unit and is not re-run.
 *
 * Cluster mode (docs/cluster.md): a commit is a record in the commit stream, decided by the
 * node's applier on the main thread, and a worker runs several jobs at once (main/pool.ts): job A
 * waits for its record's decision while job B runs. If B's time limit terminates the thread, A's
 * record may already be in the stream and still commit; the worker can no longer store A's count.
 * So the main thread, which decides, stores it: every commit request carries a
 * {@link CommitTicket} (the job's slot, its number in the pool, and how many leading units are finished
 * if this record commits), and the main thread stores that count into the slot
 * ({@link ProgressReader.committed}) when the decision is `committed`, BEFORE it answers the
 * worker (so a count the worker stores later, after the answer, is never overwritten by an older
 * one). A job that fails while one of its records is undecided has its failure handled only once
 * that record is decided (main/job-commits.ts), so `done` then includes it. Both stores are
 * Atomics on the main thread's side and the failure reads after them on the same thread.
 */
import { threadId } from 'node:worker_threads';
import { ErrorCode, LexiconsError } from '../errors.js';

export const kSlotWords = 5;
export const kUnitField = 0;
export const kStartField = 1;
export const kStateField = 2;
export const kDoneField = 3;
export const kThreadField = 4;

export const kFramework = 0n;
export const kUser = 1n;
export const kAborted = 2n;

export function createProgressBuffer(slots: number): SharedArrayBuffer {
  return new SharedArrayBuffer(slots * kSlotWords * BigInt64Array.BYTES_PER_ELEMENT);
}

/**
 * What a cluster commit request carries besides the record: the job's progress slot, the job's
 * number (slots are reused: a late request of a dead job must not count for the next job),
 * and the leading units finished once this record commits.
 */
export interface CommitTicket {
  readonly slot: number;
  readonly job: number;
  readonly done: number;
}

/** Worker side: stamps the unit being run and the start of user code. */
export class ProgressWriter {
  readonly #view: BigInt64Array;
  readonly #base: number;
  readonly #slot: number;
  readonly #job: number;
  #done = 0;
  #aborted = false;

  /** `job`: the pool's number of the job (Job `jobId`), for {@link ticket}. */
  constructor(buffer: SharedArrayBuffer, slot: number, job = 0) {
    this.#view = new BigInt64Array(buffer);
    this.#base = slot * kSlotWords;
    this.#slot = slot;
    this.#job = job;
    // Which thread to terminate when this job exceeds the time limit on a cluster node (main/pool.ts).
    Atomics.store(this.#view, this.#base + kThreadField, BigInt(threadId));
  }

  /** User code of `unit` starts now. */
  enter(unit: number): void {
    Atomics.store(this.#view, this.#base + kUnitField, BigInt(unit));
    Atomics.store(this.#view, this.#base + kStartField, BigInt(Date.now()));
    if (Atomics.compareExchange(this.#view, this.#base + kStateField, kFramework, kUser) === kAborted) this.#aborted = true;
  }

  /** Back in framework code: not subject to the execution time limit. */
  leave(): void {
    if (Atomics.compareExchange(this.#view, this.#base + kStateField, kUser, kFramework) === kAborted) this.#aborted = true;
  }

  /**
   * The first `units` units of the job are finished and committed: a failure of the job must not
   * re-run them. Called after the unit's last commit, before any further user code (see above).
   */
  done(units: number): void {
    this.#done = units;
    Atomics.store(this.#view, this.#base + kDoneField, BigInt(units));
  }

  /** The ticket of a cluster commit request: `units` finished if it commits (default: those already done). */
  ticket(units = this.#done): CommitTicket {
    return { slot: this.#slot, job: this.#job, done: units };
  }

  /** Throws when the main thread aborted this job: its transaction must not commit. */
  checkNotAborted(): void {
    if (this.#aborted || Atomics.load(this.#view, this.#base + kStateField) === kAborted) {
      this.#aborted = true;
      throw new LexiconsError(ErrorCode.TIMEOUT, 'job aborted by the execution time limit');
    }
  }
}

/** Main side: reads, resets and aborts slots. */
export class ProgressReader {
  readonly #view: BigInt64Array;
  readonly slots: number;

  constructor(buffer: SharedArrayBuffer) {
    this.#view = new BigInt64Array(buffer);
    this.slots = this.#view.length / kSlotWords;
  }

  reset(slot: number): void {
    const base = slot * kSlotWords;
    Atomics.store(this.#view, base + kUnitField, -1n);
    Atomics.store(this.#view, base + kStartField, 0n);
    Atomics.store(this.#view, base + kStateField, kFramework);
    Atomics.store(this.#view, base + kDoneField, 0n);
    Atomics.store(this.#view, base + kThreadField, -1n);
  }

  /** The threadId of the worker that started the slot's job (-1: not started). */
  thread(slot: number): number {
    return Number(Atomics.load(this.#view, slot * kSlotWords + kThreadField));
  }

  /** Leading units of the slot's job already committed (0: none; always 0 for a batch that failed before its one commit). */
  done(slot: number): number {
    return Number(Atomics.load(this.#view, slot * kSlotWords + kDoneField));
  }

  /**
   * Cluster mode: a record of the slot's job was decided `committed`, with `units` leading units
   * finished (its {@link CommitTicket}). Stored before the worker is answered (see above).
   */
  committed(slot: number, units: number): void {
    const field = slot * kSlotWords + kDoneField;
    if (Number(Atomics.load(this.#view, field)) < units) Atomics.store(this.#view, field, BigInt(units));
  }

  unit(slot: number): number {
    return Number(Atomics.load(this.#view, slot * kSlotWords + kUnitField));
  }

  /**
   * Claims the abort of a job whose user code has run longer than `limitMs`. True means the
   * worker is in user code and will never commit this job: terminate it.
   */
  tryAbort(slot: number, now: number, limitMs: number): boolean {
    const base = slot * kSlotWords;
    if (Atomics.load(this.#view, base + kStateField) !== kUser) return false;
    if (now - Number(Atomics.load(this.#view, base + kStartField)) <= limitMs) return false;
    return Atomics.compareExchange(this.#view, base + kStateField, kUser, kAborted) === kUser;
  }
}
