/**
 * Reclamation under real concurrency: worker threads transfer between hot rows and read them
 * every way (pk, unique value, indexed value, scan) while the main thread's reclaimer compacts the
 * table again and again. No reader ever sees a torn or foreign row or a wrong sum, and the table
 * stays small. A thread terminated with a transaction open does not pin versions forever.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startReclaimer } from '../../src/storage/reclaim.js';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Hot, hotRow, hotRowProblem, reclaimSchema } from './fixtures/reclaim-schema.js';

const WORKER = new URL('./fixtures/reclaim-worker.js', import.meta.url);

function fresh(rows: number): { store: SharedStore; pks: string[]; total: number } {
  const store = SharedStore.create(reclaimSchema(), { initialRows: 64 });
  const pks = Array.from({ length: rows }, (_, i) => `r${i}`);
  store.bulkLoad(Hot, pks.map((pk, i) => ({ pk, ...hotRow(pk, i % 4, 1000) })));
  return { store, pks, total: rows * 1000 };
}

describe('version reclamation with worker threads', () => {
  it('3 threads transfer and check reads on 8 hot rows while the table is compacted: invariants hold', async () => {
    const { store, pks, total } = fresh(8);
    const gate = new Gate();
    const n = 6000;
    const workers = [1, 2, 3].map((seed) => spawnTask<{ transfers: number; reads: number; problems: string[] }>(WORKER, { handles: store.handles, gate: gate.sab, task: 'churn', params: { pks, total, n, seed } }));
    const freed: number[] = [];
    const reclaimer = startReclaimer(store, { intervalMs: 1, minDeadVersions: 256, onReclaim: (f) => freed.push(f.Hot ?? 0) });
    // The main thread reads too, between compactions.
    const mainProblems: string[] = [];
    let mainReadCount = 0;
    const mainReads = setInterval(() => {
      mainReadCount++;
      const rows = [...store.scan(Hot)];
      const sum = rows.reduce((s, r) => s + (r.balance as number), 0);
      if (sum !== total) mainProblems.push(`main thread: balances sum to ${sum}`);
      for (const row of rows) {
        const problem = hotRowProblem(row);
        if (problem !== undefined) mainProblems.push(`main thread: ${problem}`);
      }
    }, 5);
    try {
      await gate.ready(workers.length);
      gate.open();
      const results = await Promise.all(workers.map((w) => w.done));
      for (const r of results) assert.deepEqual(r.problems, []);
      assert.equal(results.reduce((sum, r) => sum + r.reads, 0), 3 * n);
    } finally {
      reclaimer.stop();
      clearInterval(mainReads);
    }
    // 3 x 6,000 transfers write 36,000 versions: compactions ran many times while they did.
    assert.deepEqual(mainProblems.slice(0, 5), []);
    assert.ok(mainReadCount > 0);
    assert.ok(freed.length >= 5, `${freed.length} compactions`);
    assert.ok(freed.every((f) => f >= 256), JSON.stringify(freed));
    const rows = [...store.scan(Hot)];
    assert.equal(rows.length, 8);
    assert.equal(rows.reduce((sum, r) => sum + (r.balance as number), 0), total);
    assert.ok(store.stats().tables.Hot!.versions < 36_000 / 2, `${store.stats().tables.Hot!.versions} versions left`);
  });

  it('a thread terminated with a transaction open stops pinning once its slot is released', async () => {
    const { store } = fresh(2);
    for (let i = 0; i < 20; i++) store.runSync((db) => db.update(Hot, 'r0', hotRow('r0', 0, i)));
    const gate = new Gate();
    const holder = spawnTask<never>(WORKER, { handles: store.handles, gate: gate.sab, task: 'hold', params: {} });
    await gate.ready(1);
    const holding = holder.message((m) => m.holding === true);
    gate.open();
    await holding;
    const threadId = holder.worker.threadId;
    const settle = async (): Promise<string> => {
      for (;;) {
        const step = store.reclaim({ force: true });
        if (step.state !== 'draining') return step.state;
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    assert.equal(await settle(), 'busy', 'the open transaction holds the versions');
    await holder.worker.terminate();
    assert.equal(await settle(), 'busy', 'until the main thread releases the dead thread');
    store.releaseIfHeldBy(threadId);
    assert.equal(await settle(), 'done');
    assert.equal(store.stats().tables.Hot!.versions, 2);
  });

  it('only the main thread reclaims', async () => {
    const { store } = fresh(1);
    const gate = new Gate();
    const w = spawnTask<unknown>(WORKER, { handles: store.handles, gate: gate.sab, task: 'reclaim', params: {} });
    await gate.ready(1);
    gate.open();
    await assert.rejects(w.done, /only the main thread reclaims versions/);
  });
});
