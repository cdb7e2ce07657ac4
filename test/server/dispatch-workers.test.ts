/**
 * How the dispatcher spreads jobs over two workers (src/main/dispatch.ts, issue #11 tail latency):
 * a real server with `--workers 2`, real clients, the per-worker job counts from /metrics.
 * - Light load whose frames overlap (two clients calling in turn, out of step, so that a frame
 *   often arrives while the other client's job is in flight): every job runs on one worker; the waiting frames go in the next
 *   job instead of waking the second worker. (LEXICONS_SPREAD_AFTER_MS is raised so that a job
 *   slowed down by a loaded machine does not count as "not keeping up": the age rule is tested
 *   in test/main/dispatch.test.ts with a stand-in pool.)
 * - Saturating load (more units waiting than one job takes): both workers run jobs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { prng } from '../helpers/prng.js';
import { fixture, suiteApp, type TestServer } from '../helpers/server.js';

/** Jobs run so far per worker thread (lexicons_batches_by_worker_total), and all jobs. */
async function jobs(srv: TestServer): Promise<{ byWorker: Map<string, number>; total: number }> {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const byWorker = new Map<string, number>();
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^lexicons_batches_by_worker_total\{worker="(\d+)"\} (\d+)$/.exec(line);
    if (m) byWorker.set(m[1]!, Number(m[2]));
    if (line.startsWith('lexicons_batches_total ')) total = Number(line.split(' ')[1]);
  }
  return { byWorker, total };
}

function delta(before: Map<string, number>, after: Map<string, number>): number[] {
  return [...after].map(([worker, n]) => n - (before.get(worker) ?? 0)).filter((n) => n > 0);
}

describe('dispatch over 2 workers: light overlapping load stays on one warm worker', { timeout: 120_000 }, () => {
  before(() => {
    process.env.LEXICONS_SPREAD_AFTER_MS = '60000';
  });
  after(() => {
    delete process.env.LEXICONS_SPREAD_AFTER_MS;
  });
  const srv = suiteApp(fixture('bank-app'), { workers: 2 });

  it('two clients calling in turn, out of step: every job on the same worker', async () => {
    await using clients = await TestClient.many(srv.url, 2);
    assert.deepEqual(await clients[0]!.call([{ Seed: { n: 4, balance: 1000 }, $id: 0 }]), [{ $ok: true, $id: 0 }]);
    const start = await jobs(srv);
    const calls = 150;
    await Promise.all(
      clients.map(async (c, k) => {
        const random = prng(k + 7);
        for (let seq = 1; seq <= calls; seq++) {
          // Out of step: each client pauses 0-2 ms before its next call, so its frame often
          // arrives while the other's job is in flight (without the pause both frames would
          // arrive together and share every job).
          await new Promise((resolve) => (random() < 0.3 ? setImmediate(resolve) : setTimeout(resolve, random() < 0.5 ? 1 : 2)));
          const items = await c.call([{ Transfer: { from: `a${k}`, to: `a${k + 2}`, amount: 1, seq }, $id: seq }]);
          assert.deepEqual(items, [{ Transfer: { seq }, $id: seq }]);
        }
      }),
    );
    const end = await jobs(srv);
    const used = delta(start.byWorker, end.byWorker);
    const ran = end.total - start.total;
    assert.equal(used.length, 1, `jobs per worker: ${JSON.stringify(used)}`);
    assert.equal(used[0], ran);
    assert.ok(ran <= 2 * calls, `${ran} jobs for ${2 * calls} frames`);
    const [total] = (await clients[0]!.call({ Total: {} })) as [{ Total: { sum: number; count: number } }];
    assert.deepEqual(total.Total, { sum: 4000, count: 4 });
  });
});

describe('dispatch over 2 workers: saturating load uses both', { timeout: 120_000 }, () => {
  const srv = suiteApp(fixture('bank-app'), { workers: 2 });

  it('24 clients sending 200 calls at once: both workers run jobs, every call answered in order', async () => {
    await using clients = await TestClient.many(srv.url, 24);
    assert.deepEqual(await clients[0]!.call([{ Seed: { n: 4, balance: 1_000_000 }, $id: 0 }]), [{ $ok: true, $id: 0 }]);
    const start = await jobs(srv);
    const calls = 200;
    // 24 x 200 frames wait at once: far more than one job takes (256 units, 32 per connection).
    await Promise.all(
      clients.map(async (c, k) => {
        for (let seq = 1; seq <= calls; seq++) c.send([{ Transfer: { from: `a${k % 4}`, to: `a${(k + 1) % 4}`, amount: 1, seq }, $id: seq }]);
        const seen: number[] = [];
        while (seen.length < calls) for (const item of (await c.next(60_000)) as Array<{ $id: number }>) seen.push(item.$id);
        assert.deepEqual(seen, Array.from({ length: calls }, (_, i) => i + 1));
      }),
    );
    const end = await jobs(srv);
    const used = delta(start.byWorker, end.byWorker);
    assert.equal(used.length, 2, `jobs per worker: ${JSON.stringify(used)}`);
    const [total] = (await clients[0]!.call({ Total: {} })) as [{ Total: { sum: number; count: number } }];
    assert.deepEqual(total.Total, { sum: 4_000_000, count: 4 });
  });
});
