/**
 * A batch that conflicts re-runs the calls from its first invalidated unit on (workers/execute-batch.ts): on
 * two workers, transfers between 4 hot accounts from 24 connections keep the total, every call
 * gets exactly one outcome (including a refused one), and each connection's outcomes come back
 * in the order it sent its calls. The runtime's reclaimer compacts the versions they superseded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { storeOf } from '../../src/main/runtime.js';
import { ControlBlock, i32TableEpoch } from '../../src/storage/layout.js';
import { dictCount } from '../../src/storage/store-handles.js';
import { TestClient } from '../helpers/client.js';
import { prng } from '../helpers/prng.js';
import { fixture, suiteApp, type TestServer } from '../helpers/server.js';

async function metric(srv: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} missing`);
  return Number(line.split(' ')[1]);
}

type Item = { $id?: number } & Record<string, unknown>;

type WaitAsync = (arr: Int32Array, index: number, value: number, timeoutMs: number) => { async: boolean; value: Promise<string> | string };

describe('conflicting batches (2 workers)', { timeout: 120_000 }, () => {
  const srv = suiteApp(fixture('bank-app'), { workers: 2 });

  it('contended transfers: total kept, one outcome per call, per-connection order kept', async () => {
    // 24 connections: a job takes at most 32 calls of 8 of them (dispatch.ts), so jobs of
    // different connections run at the same time on both workers, on the same 4 accounts.
    await using clients = await TestClient.many(srv.url, 24);
    assert.deepEqual(await clients[0]!.call([{ Seed: { n: 4, balance: 1_000_000 }, $id: 0 }]), [{ $ok: true, $id: 0 }]);
    const batchesBefore = await metric(srv, 'lexicons_batches_total');
    const attemptsBefore = await metric(srv, 'lexicons_txn_attempts_total');
    const rerunBefore = await metric(srv, 'lexicons_txn_rerun_calls_total');
    const calls = 200;
    const refused = 100; // one call per connection fails: its outcome is an error item
    const outcomes = await Promise.all(
      clients.map(async (c, k) => {
        const random = prng(k + 1);
        for (let seq = 1; seq <= calls; seq++) {
          const from = `a${Math.floor(random() * 4)}`;
          const to = `a${Math.floor(random() * 4)}`;
          c.send([{ Transfer: { from, to, amount: seq === refused ? -1 : 1 + Math.floor(random() * 100), seq }, $id: seq }]);
        }
        const seen: number[] = [];
        while (seen.length < calls) {
          for (const item of (await c.next(60_000)) as Item[]) {
            assert.equal(typeof item.$id, 'number', JSON.stringify(item));
            if (item.$id === refused) assert.deepEqual(item, { Errors: [`transfer ${refused}: negative amount`], code: 'REFUSED', $id: refused });
            else assert.deepEqual(item, { Transfer: { seq: item.$id }, $id: item.$id });
            seen.push(item.$id!);
          }
        }
        return seen;
      }),
    );
    for (const seen of outcomes) assert.deepEqual(seen, Array.from({ length: calls }, (_, i) => i + 1), 'each call once, in the order sent');
    const [total] = (await clients[0]!.call({ Total: {} })) as [{ Total: { sum: number; count: number } }];
    assert.deepEqual(total.Total, { sum: 4_000_000, count: 4 });
    for (const c of clients) assert.deepEqual(c.pending, [], 'no second outcome for any call');
    const batches = (await metric(srv, 'lexicons_batches_total')) - batchesBefore;
    const attempts = (await metric(srv, 'lexicons_txn_attempts_total')) - attemptsBefore;
    // At most 4 attempts (3 optimistic, rebases included, then exclusive) per job; each re-runs
    // at most the job's calls.
    assert.ok(attempts >= batches && attempts <= 4 * batches, `${attempts} attempts for ${batches} jobs`);
    const rerun = (await metric(srv, 'lexicons_txn_rerun_calls_total')) - rerunBefore;
    assert.ok(rerun >= 0 && rerun <= 3 * 24 * calls, `${rerun} calls re-run`);
  });

  it('the runtime reclaims the versions the transfers superseded, while workers run', async () => {
    const { store } = storeOf(srv.running)!;
    const control = new ControlBlock(store.handles.control, store.schema.tables.length, dictCount(store.schema));
    const account = store.schema.tables.findIndex((t) => t.name === 'Account');
    const epoch = control.tableEpoch(account);
    // Resolves when a compaction of Account bumps (and notifies) its epoch word.
    const waited = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(control.i32, i32TableEpoch(account), epoch, 60_000);
    await using clients = await TestClient.many(srv.url, 8);
    assert.deepEqual(await clients[0]!.call([{ Seed: { n: 1000, balance: 1000 }, $id: 0 }]), [{ $ok: true, $id: 0 }]);
    // A job commits one version per row it wrote: random transfers over 1,000 accounts write ~400
    // per job of 256 calls, so 8 x 1,300 of them supersede ~16,000 versions, past a compaction's 8,192.
    const calls = 1300;
    await Promise.all(
      clients.map(async (c, k) => {
        const random = prng(100 + k);
        for (let seq = 1; seq <= calls; seq++) {
          const [from, to] = [0, 1].map(() => `a${Math.floor(random() * 1000)}`);
          c.send([{ Transfer: { from, to, amount: 1, seq }, $id: seq }]);
        }
        let answered = 0;
        while (answered < calls) answered += ((await c.next(60_000)) as Item[]).length;
      }),
    );
    assert.equal(waited.async ? await waited.value : waited.value, 'ok', 'Account was compacted');
    assert.ok(control.tableEpoch(account) > epoch);
    assert.equal(store.stats().tables.Account!.rows, 1000);
    const [total] = (await clients[0]!.call({ Total: {} })) as [{ Total: { sum: number; count: number } }];
    assert.deepEqual(total.Total, { sum: 4_000_000 + 996 * 1000, count: 1000 });
  });
});
