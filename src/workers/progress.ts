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
 * ```
 *
 * Why: an endless-loop Signal cannot be interrupted, only its thread terminated (piscina's abort
 * signal). The main thread's watchdog aborts only jobs whose *user code* exceeded
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
 */
import { ErrorCode, LexiconsError } from '../errors.js';

export const kSlotWords = 3;
export const kUnitField = 0;
export const kStartField = 1;
export const kStateField = 2;

export const kFramework = 0n;
export const kUser = 1n;
export const kAborted = 2n;

export function createProgressBuffer(slots: number): SharedArrayBuffer {
  return new SharedArrayBuffer(slots * kSlotWords * BigInt64Array.BYTES_PER_ELEMENT);
}

/** Worker side: stamps the unit being run and the start of user code. */
export class ProgressWriter {
  readonly #view: BigInt64Array;
  readonly #base: number;
  #aborted = false;

  constructor(buffer: SharedArrayBuffer, slot: number) {
    this.#view = new BigInt64Array(buffer);
    this.#base = slot * kSlotWords;
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
