/**
 * @module bench/storage-worker
 * Worker side of bench/storage.ts: attaches to the store, warms its indexes (outside the timed
 * section), waits at a shared start gate, runs `n` operations of one kind, posts the elapsed ms.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SharedStore, type StoreHandles } from '../src/storage/store.js';
import { BenchMessage, BenchUser, benchSchema } from './storage.js';

interface Job {
  handles: StoreHandles;
  gate: SharedArrayBuffer;
  op: 'create' | 'getPk' | 'getUnique' | 'indexFilter' | 'scan';
  n: number;
  offset: number;
  users: number;
}

const job = workerData as Job;
const gate = new Int32Array(job.gate);
const attachStart = performance.now();
const store = SharedStore.attach(benchSchema(), job.handles);
const pks: string[] = [];
// Warm up: catch the per-thread indexes up and collect the user pks (not timed).
store.runSync((db) => {
  for (const u of db.query(BenchUser, { _limit: job.users })) pks.push(u.pk);
  db.get(BenchUser, { email: 'user0@example.com' });
  db.count(BenchMessage, { channel: 'none' });
});
const warmMs = performance.now() - attachStart;

function runOps(n: number, offset: number): number {
  let checksum = 0;
  switch (job.op) {
    case 'create':
      for (let i = 0; i < n; i++) {
        const k = offset + i;
        store.runSync((db) =>
          db.create(BenchMessage, { author: pks[k % pks.length]!, channel: `channel-${k % 16}`, content: `message ${k} lorem ipsum dolor sit amet, consec`.slice(0, 40), timestamp: k }),
        );
      }
      return n;
    case 'getPk':
      for (let i = 0; i < n; i++) {
        const pk = pks[(offset + i * 7919) % pks.length]!;
        checksum += store.runSync((db) => db.get(BenchUser, pk)!.age as number).value;
      }
      return checksum;
    case 'getUnique':
      for (let i = 0; i < n; i++) {
        const email = `user${(offset + i * 7919) % job.users}@example.com`;
        checksum += store.runSync((db) => db.get(BenchUser, { email })!.age as number).value;
      }
      return checksum;
    case 'indexFilter':
      for (let i = 0; i < n; i++) checksum += store.runSync((db) => db.count(BenchMessage, { channel: `channel-${i % 16}`, content__f: '7 lorem' })).value;
      return checksum;
    case 'scan':
      for (let i = 0; i < n; i++) checksum += store.runSync((db) => db.count(BenchMessage, { content__f: '7 lorem', timestamp__ge: 0 })).value;
      return checksum;
  }
}

// Warm the JIT with a few operations of the measured kind (not timed).
runOps(Math.max(1, Math.ceil(job.n / 20)), job.offset + job.n);

Atomics.add(gate, 0, 1);
Atomics.notify(gate, 0);
while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);

const start = performance.now();
const checksum = runOps(job.n, job.offset);
const elapsed = performance.now() - start;
parentPort!.postMessage({ elapsed, warmMs, checksum });
