/**
 * Execution in the worker pool: time limits (an endless loop is aborted, its callers get a
 * TIMEOUT error, the pool recovers), a crashing worker, transactions across workers, batching.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteApp, type TestServer } from '../helpers/server.js';

async function metric(srv: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} missing`);
  return Number(line.split(' ')[1]);
}

describe('execution limits and failures (1 worker)', { timeout: 60_000 }, () => {
  const srv = suiteApp(fixture('protocol-app'), { workers: 1 });

  it('aborts an endless-loop signal after executionTimeoutMs; only its caller gets the error', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    const started = Date.now();
    a.send({ Spin: {} });
    b.send({ Echo: { waiting: true } }); // queued behind the spinning worker, then re-run
    assert.deepEqual(await a.next(10_000), [{ Errors: ['Execution timed out after 1500 ms (limits.executionTimeoutMs)'] }]);
    assert.ok(Date.now() - started >= 1400, 'aborted too early');
    assert.deepEqual(await b.next(10_000), [{ Echo: { waiting: true } }]);
    // The pool recovered: a fresh worker serves the next calls, and the store is usable.
    assert.deepEqual(await a.call({ AddNote: { text: 'after' } }, 10_000), [{ AddNote: { text: 'after' } }]);
    assert.deepEqual(await a.call({ ListNotes: {} }), [{ ListNotes: ['after'] }]);
    assert.equal(await metric(srv, 'lexicons_execution_timeouts_total'), 1);
  });

  it('survives a worker that exits; the caller gets an internal error', async () => {
    await using a = await TestClient.connect(srv.url);
    const [reply] = (await a.call({ Crash: {} }, 10_000)) as [{ Errors: string[] }];
    assert.match(reply.Errors[0]!, /^Internal error: worker failed/);
    assert.deepEqual(await a.call({ Echo: { alive: 1 } }, 10_000), [{ Echo: { alive: 1 } }]);
  });
});

describe('transactions and batching (4 workers)', { timeout: 60_000 }, () => {
  const srv = suiteApp(fixture('protocol-app'), { workers: 4 });

  it('increments a shared counter exactly once per call across workers', async () => {
    await using clients = await TestClient.many(srv.url, 8);
    const perClient = 50;
    for (const c of clients) for (let i = 0; i < perClient; i++) c.send({ Incr: { name: 'hits' } });
    // Each client's calls run in order: its GetCounter runs after its own increments.
    const replies = await Promise.all(clients.map((c) => c.call({ GetCounter: { name: 'hits' } }, 20_000)));
    const values = replies.map((r) => (r as [{ GetCounter: { value: number } }])[0].GetCounter.value);
    assert.ok(values.every((v) => v >= perClient));
    const final = (await clients[0]!.call({ GetCounter: { name: 'hits' } })) as [{ GetCounter: { value: number } }];
    assert.equal(final[0].GetCounter.value, clients.length * perClient);
  });

  it('packs many inbound frames into few pool jobs', async () => {
    const batchesBefore = await metric(srv, 'lexicons_batches_total');
    const unitsBefore = await metric(srv, 'lexicons_batch_units_total');
    await using clients = await TestClient.many(srv.url, 4);
    const n = 400;
    for (const c of clients) for (let i = 0; i < n; i++) c.send({ Echo: { i } });
    for (const c of clients) {
      for (let i = 0; i < n; i++) assert.deepEqual(await c.next(), [{ Echo: { i } }]);
    }
    const batches = (await metric(srv, 'lexicons_batches_total')) - batchesBefore;
    const units = (await metric(srv, 'lexicons_batch_units_total')) - unitsBefore;
    assert.ok(units >= 4 * n);
    assert.ok(units / batches > 4, `expected batching, got ${units} units in ${batches} jobs`);
  });
});
