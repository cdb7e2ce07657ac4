/**
 * Runaway Signals: an endless loop is aborted after `limits.executionTimeoutMs`; a Signal
 * allocating without bound reaches its worker's heap limit (`limits.workerMemoryMb`, piscina
 * `resourceLimits`) and kills only that worker. In both cases the caller gets an error within a
 * bounded time, the pool recovers, and another client is served throughout.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteApp } from '../helpers/server.js';

/** Echo calls in a loop until `stop()`; every call must be answered; returns how many. */
function bystander(client: TestClient): { stop(): Promise<number> } {
  let running = true;
  const loop = (async () => {
    let n = 0;
    while (running && n < 100_000) {
      assert.deepEqual(await client.call({ Echo: { n } }, 15_000), [{ Echo: { n } }]);
      n++;
      await new Promise((r) => setTimeout(r, 5)); // pacing under the rate limit
    }
    return n;
  })();
  return {
    stop: async () => {
      running = false;
      return loop;
    },
  };
}

describe('runaway signals (2 workers)', { timeout: 90_000 }, () => {
  const srv = suiteApp(fixture('hostile-app'), { workers: 2 });

  it('aborts an endless loop within executionTimeoutMs while another client is served', async () => {
    await using caller = await TestClient.connect(srv.url);
    await using other = await TestClient.connect(srv.url);
    const side = bystander(other);
    const started = Date.now();
    assert.deepEqual(await caller.call({ Spin: {} }, 15_000), [{ Errors: ['Execution timed out after 2000 ms (limits.executionTimeoutMs)'] }]);
    const took = Date.now() - started;
    assert.ok(took >= 1900 && took < 8000, `aborted after ${took} ms`);
    assert.deepEqual(await caller.call({ Put: { key: 'after-spin', value: 'v' } }, 10_000), [{ Put: { key: 'after-spin' } }]);
    const served = await side.stop();
    assert.ok(served > 0, 'the other client was served while the loop ran');
  });

  it('kills only the worker of a signal allocating without bound; the pool recovers', async () => {
    await using caller = await TestClient.connect(srv.url);
    await using other = await TestClient.connect(srv.url);
    const side = bystander(other);
    const started = Date.now();
    const [reply] = (await caller.call({ Hog: {} }, 30_000)) as [{ Errors: string[] }];
    const took = Date.now() - started;
    // The heap limit (or, on a slow machine, the time limit) stops it; never the process.
    assert.match(reply.Errors[0]!, /^(Internal error: worker out of memory \(over \d+ MiB, limits\.workerMemoryMb\); it was replaced|Execution timed out after 2000 ms)/);
    assert.ok(took < 20_000, `stopped after ${took} ms`);
    for (let i = 0; i < 4; i++) assert.deepEqual(await caller.call({ Put: { key: `after-hog-${i}`, value: 'v' } }, 10_000), [{ Put: { key: `after-hog-${i}` } }]);
    const served = await side.stop();
    assert.ok(served > 0, 'the other client was served while the hog ran');
    const [missing] = (await caller.call({ Missing: { keys: ['after-spin', 'after-hog-0', 'after-hog-3'] } })) as [{ Missing: { missing: string[] } }];
    assert.deepEqual(missing.Missing.missing, []);
    const health = await fetch(`http://127.0.0.1:${srv.port}/health`);
    assert.equal(((await health.json()) as { workers: number }).workers, 2);
    process.stdout.write(`# runaway: endless loop and unbounded allocation stopped; hog stopped after ${took} ms with: ${reply.Errors[0]}\n`);
  });
});
