/**
 * The test client's waits against a stalled process: a reply that arrived while this process was
 * not running (a loaded CI machine; here a synchronous busy loop) is delivered, not reported as a
 * timeout: a wait counts only time the process was running (test/helpers/client.ts expireAfter).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteApp } from '../helpers/server.js';

/** Blocks this thread for `ms` (the server's worker thread goes on meanwhile). */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('TestClient waits after a stalled event loop', { timeout: 60_000 }, () => {
  const srv = suiteApp(fixture('protocol-app'), { workers: 1 });

  it('delivers a frame that came while the process was stalled past the deadline', async () => {
    await using c = await TestClient.connect(srv.url);
    const reply = c.next(1000);
    c.send({ Echo: { n: 1 } });
    // Three times the deadline: on waking, a plain setTimeout is due before the poll phase has
    // read the worker's result (and then the reply frame), and would reject here.
    stall(3000);
    assert.deepEqual(await reply, [{ Echo: { n: 1 } }]);
  });

  it('still times out when nothing comes', async () => {
    await using c = await TestClient.connect(srv.url);
    await assert.rejects(c.next(100), /no frame within 100 ms \(waited \d+ ms; socket open; received so far: \[\]\)/);
  });
});
