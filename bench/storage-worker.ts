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
  op: 'create' | 'getPk' | 'getUnique' | 'scan';
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

Atomics.add(gate, 0, 1);
Atomics.notify(gate, 0);
while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);

let checksum = 0;
const start = performance.now();
switch (job.op) {
  case 'create':
    for (let i = 0; i < job.n; i++) {
      const k = job.offset + i;
      store.runSync((db) =>
        db.create(BenchMessage, { author: pks[k % pks.length]!, channel: `channel-${k % 16}`, content: `message ${k} lorem ipsum dolor sit amet, consec`.slice(0, 40), timestamp: k }),
      );
    }
    checksum = job.n;
    break;
  case 'getPk':
    for (let i = 0; i < job.n; i++) {
      const pk = pks[(job.offset + i * 7919) % pks.length]!;
      checksum += store.runSync((db) => db.get(BenchUser, pk)!.age as number).value;
    }
    break;
  case 'getUnique':
    for (let i = 0; i < job.n; i++) {
      const email = `user${(job.offset + i * 7919) % job.users}@example.com`;
      checksum += store.runSync((db) => db.get(BenchUser, { email })!.age as number).value;
    }
    break;
  case 'scan':
    for (let i = 0; i < job.n; i++) {
      checksum += store.runSync((db) => db.count(BenchMessage, { channel: 'channel-3', content__f: '7 lorem' })).value;
    }
    break;
}
const elapsed = performance.now() - start;
parentPort!.postMessage({ elapsed, warmMs, checksum });
