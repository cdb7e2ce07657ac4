/**
 * @module storage/collect-garbage
 * One full garbage collection, on demand, without `--expose-gc` on the command line.
 *
 * Why: loading a large CSV file leaves its parse garbage (csv-parse's record arrays, the decoded
 * row objects, the 64 KiB read Buffers) in V8's old space and in external memory, and an idle
 * server never collects it: V8 starts a major GC under allocation pressure, which a server that
 * just started does not have. Measured with 1,000,000 ChatMessage rows (139 MB of CSV): the RSS
 * over an empty server stayed at 1.68x the CSV's bytes for 30 s after LISTEN; one full GC right
 * after the load brings it to 1.10x (the rows themselves live in SharedArrayBuffers, outside the
 * JS heap). The flag is switched on only for the moment it takes to fetch V8's `gc` function into a
 * fresh context, then off again, so user code never sees a global `gc`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFunction: (() => void) | null = null;

/** Runs a full (mark-compact) garbage collection of this thread's heap; synchronous. */
export function collectGarbage(): void {
  if (gcFunction === null) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === 'function') gcFunction = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gcFunction = runInNewContext('gc') as () => void;
      setFlagsFromString('--no-expose-gc');
    }
  }
  gcFunction();
}
