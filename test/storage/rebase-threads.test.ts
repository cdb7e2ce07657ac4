/**
 * Rebased commits (storage/transaction.ts `commit({ rebase: true })`): a job of steps that
 * conflicts keeps the steps before the first one a concurrent commit invalidated and re-runs only
 * the rest. If a kept step had read something overwritten, or a rolled-back step left a write
 * behind, balances would drift from what the transfers add up to (a lost or doubled update).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedStore } from '../../src/storage/store.js';
import { Gate, spawnTask } from '../helpers/threads.js';
import { Counter, schema } from './fixtures/schema.js';
import { jobsOf, runJobs, type JobCounts } from './fixtures/rebase-jobs.js';

const WORKER = new URL('./fixtures/rebase-worker.js', import.meta.url);

function accounts(n: number): SharedStore {
  const store = SharedStore.create(schema(), { initialRows: 64, maxBytesPerBuffer: 64 << 20 });
  store.bulkLoad(Counter, Array.from({ length: n }, (_, i) => ({ pk: `acct${i}`, key: `acct${i}`, value: 1000 })));
  return store;
}

/** Runs one worker per params object, all started at once; their results in order. */
async function runAll<T>(store: SharedStore, task: 'jobs' | 'skew', params: Array<Record<string, unknown>>): Promise<T[]> {
  const gate = new Gate();
  const workers = params.map((p) => spawnTask<T>(WORKER, { handles: store.handles, gate: gate.sab, task, params: p }));
  await gate.ready(workers.length);
  gate.open();
  return Promise.all(workers.map((w) => w.done));
}

function hadRebases(counts: readonly JobCounts[]): boolean {
  return counts.some((c) => c.rebases > 0);
}

function balance(store: SharedStore, pk: string): number {
  return store.runSync((db) => db.get(Counter, pk)!.value as number).value;
}

describe('rebased commits: keep the valid steps, re-run the rest', () => {
  it('a conflict in step 2 keeps steps 0-1, moves the snapshot, and re-runs from step 2', () => {
    const store = accounts(4);
    const txn = store.begin();
    const bump = (s: number, pk: string): void => {
      assert.equal(txn.step(), s);
      const row = txn.db.get(Counter, pk)!;
      txn.db.update(Counter, pk, { value: (row.value as number) + 1 });
    };
    bump(0, 'acct0');
    bump(1, 'acct1');
    bump(2, 'acct2');
    bump(3, 'acct3');
    const before = txn.snapshot;
    store.runSync((db) => db.update(Counter, 'acct2', { value: 500 })); // overwrites what step 2 read
    const result = txn.commit({ rebase: true });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.step, 2);
    assert.ok(txn.snapshot > before, 'the snapshot moved to the latest commit');
    // Steps 0-1 are kept (their writes visible to the transaction), steps 2-3 rolled back.
    assert.equal(txn.db.get(Counter, 'acct1')!.value, 1001);
    assert.equal(txn.db.get(Counter, 'acct3')!.value, 1000);
    bump(2, 'acct2');
    bump(3, 'acct3');
    assert.equal(txn.commit({ rebase: true }).ok, true);
    assert.deepEqual([0, 1, 2, 3].map((i) => balance(store, `acct${i}`)), [1001, 1001, 501, 1001]);
  });

  it('a conflict in step 0, or a commit without rebase, ends the transaction as before', () => {
    const store = accounts(2);
    for (const rebase of [true, false]) {
      const txn = store.begin();
      for (const pk of ['acct0', 'acct1']) {
        txn.step();
        txn.db.update(Counter, pk, { value: (txn.db.get(Counter, pk)!.value as number) + 1 });
      }
      store.runSync((db) => db.update(Counter, rebase ? 'acct0' : 'acct1', { value: 7 }));
      const result = txn.commit({ rebase });
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.step, undefined);
      assert.throws(() => txn.db.get(Counter, 'acct0'), /already committed or aborted/);
    }
  });

  // Whether two jobs overlap mid-way depends on how the OS interleaves the threads (on a loaded
  // machine one may run alone for a while): a round without any rebase proved nothing, so rounds
  // (fresh store, new seeds) repeat until one had rebases; every round checks the invariants.
  const ROUNDS = 10;

  it('3 threads x 150 jobs of 24 transfers over 200 accounts: every transfer applied once, rebases happen', async () => {
    const n = 200;
    const all: JobCounts[][] = [];
    for (let round = 0; round < ROUNDS && !all.some(hadRebases); round++) {
      const store = accounts(n);
      const params = [11, 22, 33].map((seed) => ({ seed: seed + 1000 * round, jobs: 150, steps: 24, accounts: n }));
      const counts = await runAll<JobCounts>(store, 'jobs', params);
      all.push(counts);
      const expected = new Map<string, number>();
      for (const p of params) {
        for (const job of jobsOf(p.seed, p.jobs, p.steps, p.accounts)) {
          for (const t of job) {
            expected.set(t.from, (expected.get(t.from) ?? 1000) - t.amount);
            expected.set(t.to, (expected.get(t.to) ?? 1000) + t.amount);
          }
        }
      }
      let total = 0;
      for (let i = 0; i < n; i++) {
        const pk = `acct${i}`;
        const value = balance(store, pk);
        total += value;
        assert.equal(value, expected.get(pk) ?? 1000, `${pk}: a transfer was lost or applied twice (round ${round}: ${JSON.stringify(counts)})`);
      }
      assert.equal(total, n * 1000);
    }
    assert.ok(all.some(hadRebases), `no job conflicted mid-way in ${all.length} rounds: the test proved nothing (${JSON.stringify(all)})`);
  });

  it('write skew in 2 threads x 150 jobs of 24 steps over 300 pairs: no read ever sees a pair with both off, rebases happen', async () => {
    const pairs = 300;
    const all: Array<Array<JobCounts & { bothOff: number }>> = [];
    for (let round = 0; round < ROUNDS && !all.some(hadRebases); round++) {
      const store = SharedStore.create(schema(), { initialRows: 64, maxBytesPerBuffer: 64 << 20 });
      store.bulkLoad(Counter, Array.from({ length: pairs }, (_, i) => [{ pk: `x${i}`, key: `x${i}`, value: 1 }, { pk: `y${i}`, key: `y${i}`, value: 1 }]).flat());
      const params = [0, 1].map((role) => ({ seed: 100 + role + 1000 * round, jobs: 150, steps: 24, pairs, role }));
      const counts = await runAll<JobCounts & { bothOff: number }>(store, 'skew', params);
      all.push(counts);
      assert.equal(counts[0]!.bothOff + counts[1]!.bothOff, 0, `a read saw a pair with both off (round ${round}: ${JSON.stringify(counts)})`);
      store.runSync((db) => {
        for (let i = 0; i < pairs; i++) {
          const on = (db.get(Counter, `x${i}`)!.value as number) + (db.get(Counter, `y${i}`)!.value as number);
          assert.ok(on >= 1, `pair ${i}: both off (round ${round}: ${JSON.stringify(counts)})`);
        }
      });
    }
    assert.ok(all.some(hadRebases), `no job conflicted mid-way in ${all.length} rounds: the test proved nothing (${JSON.stringify(all)})`);
  });

  it('in one thread, the same jobs never conflict (no rebase, no re-run)', () => {
    const store = accounts(10);
    const counts = runJobs(store, jobsOf(5, 20, 16, 10));
    assert.deepEqual({ ...counts, steps: 0 }, { rebases: 0, restarts: 0, rerunSteps: 0, steps: 0 });
  });
});
