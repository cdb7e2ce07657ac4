/**
 * Live-query test helper: run a check once per frame that changed some of a client's live views.
 * The items of one frame are applied synchronously, one event each: the check runs in a microtask,
 * once the whole frame was applied, so it sees the views as the frame left them.
 */
import type { LiveEvent, LiveView } from '../../src/client/index.js';

/** Calls `check` once per frame that changed any of `views`; `onEvent` sees every event first (errors, say). */
export function onEachFrame(views: readonly LiveView[], check: () => void, onEvent?: (event: LiveEvent) => void): void {
  let scheduled = false;
  for (const view of views) {
    view.on((event) => {
      onEvent?.(event);
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(() => {
        scheduled = false;
        check();
      });
    });
  }
}
