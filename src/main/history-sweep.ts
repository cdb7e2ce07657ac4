/**
 * @module main/history-sweep
 * The periodic trim of channel history on the main thread (storage: SharedStore.trimHistory):
 * rows beyond a channel's `size` or older than its `maxAgeSeconds`, including channels nobody
 * publishes to any more. The committers trim too, with each publication. On this thread the
 * commit lock is only tried: a busy lock skips a round.
 */
import { messageOf } from '../errors.js';
import type { SharedStore } from '../storage/store.js';
import type { LogFn } from './log.js';

/** Seconds between history trim sweeps. */
const SWEEP_SECONDS = 10;
/** Rows one sweep deletes at most (a sweep with more to do runs again after a second). */
const SWEEP_ROWS = 10_000;

export function startHistorySweep(store: SharedStore, log: LogFn): { stop(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const round = (): void => {
    let more = false;
    try {
      more = store.trimHistory(Date.now(), { maxRows: SWEEP_ROWS })?.more ?? false;
    } catch (err) {
      log('ERROR', { message: `history trim sweep failed (retried later): ${messageOf(err)}` });
    }
    timer = setTimeout(round, (more ? 1 : SWEEP_SECONDS) * 1000);
    timer.unref();
  };
  timer = setTimeout(round, SWEEP_SECONDS * 1000);
  timer.unref();
  return { stop: () => clearTimeout(timer) };
}
