/**
 * What the client's test files share: waiting for a state event, and a burst of concurrent
 * Echo calls whose outcomes are checked (each settles once, with its own reply).
 */
import assert from 'node:assert/strict';
import type { Client, ClientState, StateEvent } from '../../src/client/index.js';
import { expireAfter } from '../helpers/client.js';

/** Resolves with the next state event `state` (matching `match`), bounded in time. */
export function nextState<S extends ClientState>(client: Client<any>, state: S, match: (e: StateEvent & { state: S }) => boolean = () => true, timeoutMs = 10_000): Promise<StateEvent & { state: S }> {
  return new Promise((resolve, reject) => {
    const cancel = expireAfter(timeoutMs, () => {
      off();
      reject(new Error(`no ${state} state within ${timeoutMs} ms (now ${client.state})`));
    });
    const off = client.onState((e) => {
      if (e.state === state && match(e as StateEvent & { state: S })) {
        cancel();
        off();
        resolve(e as StateEvent & { state: S });
      }
    });
  });
}

/** Makes `count` concurrent `Echo {n}` calls; asserts each settled once, resolving with `{n}`. */
export async function echoBurst(client: Client<any>, count: number): Promise<void> {
  let settlements = 0;
  const calls = Array.from({ length: count }, (_, n) =>
    (client as Client).call('Echo', { n }, { timeoutMs: 60_000 }).finally(() => {
      settlements++;
    }),
  );
  const results = await Promise.allSettled(calls);
  assert.equal(settlements, count);
  results.forEach((r, n) => assert.deepEqual(r, { status: 'fulfilled', value: { n } }));
}
