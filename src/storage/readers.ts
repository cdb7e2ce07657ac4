/**
 * @module storage/readers
 * Reader slots: how every thread tells the reclaimer (reclaim.ts) that it is reading the shared
 * version slots, so that slots are never moved under a reader.
 *
 * WHY A SLOT PER STORE INSTANCE, AND A DRAIN FLAG
 *
 * Reclamation compacts a table in place: it moves the live versions down over the dead ones. An
 * open transaction addresses versions by slot number (its indexes, the versions its writes
 * replace), and a lock-free reader may be in the middle of a slot, so compaction may only run
 * while no instance on any thread reads. Each {@link SharedStore} instance claims one reader
 * slot of the control block (owner word = its threadId + 1, layout.ts) and keeps its open flag at
 * 1 while it has a transaction or a pin open (several open ones in one instance count once).
 *
 * The reclaimer raises the drain flag `kReclaim`, then waits (on later event-loop turns, never
 * blocking) until every open flag is 0, and compacts in one synchronous step. A reader entering
 * stores its open flag FIRST and loads the drain flag AFTER; the reclaimer stores the drain flag
 * first and loads the open flags after. Atomics are sequentially consistent, so in every
 * interleaving at least one of them sees the other (Dekker): either the reader sees the flag and
 * steps back (open = 0, then Atomics.wait until the flag drops), or the reclaimer sees the reader
 * and does not compact. The reclaimer's plain writes (moved slots) precede its Atomics.store of
 * the flag back to 0, and a reader proceeds only after loading 0, so it sees every moved byte.
 *
 * The main thread never waits here: it is the only thread that reclaims (SharedStore.reclaim),
 * and it compacts inside one synchronous call, so none of its own reads can overlap a compaction;
 * its reads that span event-loop turns (pins, scans) keep its open flag at 1, which the reclaimer
 * checks like any other.
 *
 * A worker that dies with its flag at 1 would block reclamation forever: the main thread clears a
 * dead thread's slots when it frees its lock (SharedStore.releaseIfHeldBy).
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { ErrorCode, LexiconsError } from '../errors.js';
import { i32ReaderOwner, kReclaim, READER_SLOTS, type ControlBlock } from './layout.js';

/** A worker waiting for the drain flag to drop re-checks it at least this often. */
const WAIT_MS = 20;

/**
 * Frees the slot of a store instance that was garbage collected: no read can be open in it then
 * (an open transaction or pin references the instance), so its open flag is already 0.
 */
const slotsOfCollected = new FinalizationRegistry<{ i32: Int32Array; owner: number; me: number }>(({ i32, owner, me }) => {
  Atomics.compareExchange(i32, owner, me, 0);
});

/**
 * Zero-copy Arrow views (SharedStore.toArrow) view the shared buffers themselves: their pin is
 * released only when the view is garbage collected, so no compaction rewrites a view in use.
 */
const viewPins = new FinalizationRegistry<() => void>((unpin) => unpin());

/** Keeps a pin (ReaderSlot.pin's release function) until `view` is garbage collected. */
export function pinUntilCollected(view: object, unpin: () => void): void {
  viewPins.register(view, unpin);
}

/** Takes a free slot for thread `me` (threadId + 1): its owner word's index. */
function claimSlot(i32: Int32Array, first: number, me: number): number {
  for (let r = 0; r < READER_SLOTS; r++) {
    const owner = first + 2 * r;
    // CAS: two threads attaching at once never take the same slot.
    if (Atomics.compareExchange(i32, owner, 0, me) === 0) return owner;
  }
  throw new LexiconsError(ErrorCode.CAPACITY, `more than ${READER_SLOTS} SharedStore instances are attached to one store at once`);
}

/** This store instance's reader slot. */
export class ReaderSlot {
  readonly #i32: Int32Array;
  readonly #open: number;
  readonly #first: number;
  #depth = 0;

  constructor(control: ControlBlock, holder: object) {
    const i32 = (this.#i32 = control.i32);
    const me = threadId + 1;
    this.#first = i32ReaderOwner(control.tableCount, control.dictCount, 0);
    const owner = claimSlot(i32, this.#first, me);
    this.#open = owner + 1;
    Atomics.store(i32, this.#open, 0);
    slotsOfCollected.register(holder, { i32, owner, me });
  }

  /** Opens a read (a transaction or a pin); waits in a worker while the reclaimer compacts. */
  enter(): void {
    if (this.#depth++ > 0) return;
    const i32 = this.#i32;
    for (;;) {
      Atomics.store(i32, this.#open, 1); // first: publish "reading" ...
      const drain = Atomics.load(i32, kReclaim); // ... then look at the flag (see the module comment)
      if (drain === 0 || isMainThread) return;
      Atomics.store(i32, this.#open, 0); // step back so the reclaimer can go on, and wait
      Atomics.wait(i32, kReclaim, drain, WAIT_MS);
    }
  }

  /** Closes a read opened by {@link enter}. */
  leave(): void {
    if (this.#depth === 0) throw new LexiconsError(ErrorCode.TXN, 'reader slot: leave() without enter()');
    // Atomics.store after the reads: a reclaimer that loads 0 is ordered after all of them.
    if (--this.#depth === 0) Atomics.store(this.#i32, this.#open, 0);
  }

  /** {@link enter} now; the returned function leaves (once, however often it is called). */
  pin(): () => void {
    this.enter();
    let pinned = true;
    return () => {
      if (pinned) this.leave();
      pinned = false;
    };
  }

  /** Whether this instance has a read open. */
  get open(): boolean {
    return this.#depth > 0;
  }

  /** Whether any instance on any thread has a read open (the reclaimer's check). */
  anyOpen(): boolean {
    for (let r = 0; r < READER_SLOTS; r++) if (Atomics.load(this.#i32, this.#first + 2 * r + 1) !== 0) return true;
    return false;
  }

  /** Frees the slots of thread `threadId` (it exited: its open reads ended with it). */
  releaseThread(threadId: number): number {
    let freed = 0;
    for (let r = 0; r < READER_SLOTS; r++) {
      const owner = this.#first + 2 * r;
      if (Atomics.load(this.#i32, owner) !== threadId + 1) continue;
      Atomics.store(this.#i32, owner + 1, 0);
      if (Atomics.compareExchange(this.#i32, owner, threadId + 1, 0) === threadId + 1) freed++;
    }
    return freed;
  }

  /** Raises (true) or drops the drain flag; dropping wakes the workers waiting in {@link enter}. */
  drain(on: boolean): void {
    Atomics.store(this.#i32, kReclaim, on ? 1 : 0);
    if (!on) Atomics.notify(this.#i32, kReclaim);
  }

  get draining(): boolean {
    return Atomics.load(this.#i32, kReclaim) !== 0;
  }
}
