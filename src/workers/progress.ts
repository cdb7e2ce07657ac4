/**
 * @module workers/progress
 * Progress slots: how the main thread learns, without blocking and without a message round trip,
 * which unit of a pool job a worker is executing and since when.
 *
 * One SharedArrayBuffer, viewed as a BigInt64Array, holds `kSlotWords` words per slot:
 *
 * ```
 * [slot * kSlotWords + kUnitField]   index of the unit being executed (-1: none yet)
 * [slot * kSlotWords + kStartField]  Date.now() when the current user call started; 0 while the
 *                                    worker is in framework code (begin, commit, lock waits)
 * ```
 *
 * Why: an endless-loop Signal cannot be interrupted, only its thread terminated (piscina's abort
 * signal). The main thread's watchdog reads the start time to abort only jobs whose *user code*
 * exceeded `limits.executionTimeoutMs` (a worker waiting for the store lock held by a hung worker
 * is not blamed), and reads the unit index to fail only the guilty unit and re-queue the others.
 * Atomics.store/load never block, so the socket thread may read them.
 */

export const kSlotWords = 2;
export const kUnitField = 0;
export const kStartField = 1;

export function createProgressBuffer(slots: number): SharedArrayBuffer {
  return new SharedArrayBuffer(slots * kSlotWords * BigInt64Array.BYTES_PER_ELEMENT);
}

/** Worker side: stamps the unit being run and the start of user code. */
export class ProgressWriter {
  readonly #view: BigInt64Array;
  readonly #base: number;

  constructor(buffer: SharedArrayBuffer, slot: number) {
    this.#view = new BigInt64Array(buffer);
    this.#base = slot * kSlotWords;
  }

  /** User code of `unit` starts now. */
  enter(unit: number): void {
    Atomics.store(this.#view, this.#base + kUnitField, BigInt(unit));
    Atomics.store(this.#view, this.#base + kStartField, BigInt(Date.now()));
  }

  /** Back in framework code: not subject to the execution time limit. */
  leave(): void {
    Atomics.store(this.#view, this.#base + kStartField, 0n);
  }
}

/** Main side: reads and resets slots. */
export class ProgressReader {
  readonly #view: BigInt64Array;
  readonly slots: number;

  constructor(buffer: SharedArrayBuffer) {
    this.#view = new BigInt64Array(buffer);
    this.slots = this.#view.length / kSlotWords;
  }

  reset(slot: number): void {
    Atomics.store(this.#view, slot * kSlotWords + kUnitField, -1n);
    Atomics.store(this.#view, slot * kSlotWords + kStartField, 0n);
  }

  unit(slot: number): number {
    return Number(Atomics.load(this.#view, slot * kSlotWords + kUnitField));
  }

  /** Milliseconds the current user call has been running, or 0 when none is. */
  runningFor(slot: number, now: number): number {
    const start = Number(Atomics.load(this.#view, slot * kSlotWords + kStartField));
    return start === 0 ? 0 : now - start;
  }
}
