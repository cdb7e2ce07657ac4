/**
 * A batch whose commit conflicts mid-way (src/workers/execute-batch.ts): the units before the
 * first one whose reads a concurrent commit overwrote are kept, the transaction is rebased, and
 * only the later units re-run; their first run's effects, `$key` outcomes and counts are rewound.
 * A Signal makes the conflict deterministic: once, after reading its row, it commits a change of
 * that row in a separate transaction (as another worker would).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, Signal, type SignalContext } from '../../src/components.js';
import { encodeBatch, unpackEffects, UNIT_FRAME, type BatchJob, type ConnectionSnapshot } from '../../src/job-contract.js';
import { Server } from '../../src/server.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { runBatch } from '../../src/workers/execute-batch.js';
import { inThreadWorkerApp } from '../helpers/worker-app.js';

class Slot extends Model {
  static value = field.int();
}

/** The store, and whether Interfere still has to commit its concurrent change. */
const side: { store?: SharedStore; pending: boolean } = { pending: false };

class Bump extends Signal {
  static override args = { pk: field.str() };
  execute({ pk, db, ws }: SignalContext<{ pk: string }>) {
    const value = (db.get(Slot, pk)!.value as number) + 1;
    db.update(Slot, pk, { value });
    ws.send({ pk, value });
  }
}
class Interfere extends Signal {
  static override args = { pk: field.str() };
  execute({ pk, db, ws }: SignalContext<{ pk: string }>) {
    const value = db.get(Slot, pk)!.value as number;
    if (side.pending) {
      side.pending = false;
      side.store!.runSync((other) => other.update(Slot, pk, { value: 100 }));
    }
    ws.send({ pk, seen: value });
  }
}
class Public extends Channel {}

const server = new Server({ models: [Slot], signals: [Bump, Interfere], channels: [Public] });

function setUp(): ReturnType<typeof inThreadWorkerApp> {
  const store = SharedStore.create(compileSchema([Slot]), { initialRows: 4 });
  store.bulkLoad(Slot, ['a', 'b', 'c'].map((pk) => ({ pk, value: 0 })));
  return inThreadWorkerApp(server, store);
}

const c1: ConnectionSnapshot = { id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] };
const c2: ConnectionSnapshot = { id: 'c2', address: '127.0.0.1', auth: undefined, channels: [] };

function job(frames: Array<[number, string]>): BatchJob {
  const units = frames.map(([, text]) => ({ kind: UNIT_FRAME, text }) as const);
  return { ...encodeBatch([c1, c2], units, frames.map(([owner]) => owner), 0), slot: 0, jobId: 0 };
}

describe('runBatch after a conflict mid-way', () => {
  it('keeps units 0-1, re-runs units 2-3 once at the new snapshot, and sends each reply once', async () => {
    const { app, store, close } = setUp();
    side.store = store;
    side.pending = true;
    try {
      const result = await runBatch(
        app,
        job([
          [0, '{"Bump":{"pk":"a"}}'],
          [1, '[{"Bump":{"pk":"b"}},{"$id":7,"$key":"k7","Bump":{"pk":"b"}}]'],
          [0, '{"Interfere":{"pk":"c"}}'],
          [1, '{"$id":8,"$key":"k8","Bump":{"pk":"c"}}'],
        ]),
      );
      assert.equal(side.pending, false, 'the concurrent commit happened');
      const { commitMs: _commitMs, ...stats } = result.stats;
      assert.deepEqual(stats, { calls: 5, errors: 0, attempts: 2, rerunCalls: 2 });
      assert.deepEqual(unpackEffects(result.packed!, ['c1', 'c2']), [
        { kind: 'send', connectionId: 'c1', text: '{"pk":"a","value":1}' },
        { kind: 'send', connectionId: 'c2', text: '{"pk":"b","value":1}' },
        { kind: 'send', connectionId: 'c2', text: '{"pk":"b","value":2}' },
        { kind: 'send', connectionId: 'c2', text: '[{"$ok":true,"$id":7}]' },
        { kind: 'send', connectionId: 'c1', text: '{"pk":"c","seen":100}' },
        { kind: 'send', connectionId: 'c2', text: '{"pk":"c","value":101}' },
        { kind: 'send', connectionId: 'c2', text: '[{"$ok":true,"$id":8}]' },
      ]);
      assert.deepEqual(result.packed!.keyed?.map((k) => k.key), ['k7', 'k8'], 'one $key outcome per call');
      const values = store.runSync((db) => db.query(Slot).map((s) => [s.pk, s.value])).value;
      assert.deepEqual(Object.fromEntries(values), { a: 1, b: 2, c: 101 });
    } finally {
      close();
    }
  });

  it('re-runs the whole batch when the first unit conflicts', async () => {
    const { app, store, close } = setUp();
    side.store = store;
    side.pending = true;
    try {
      const result = await runBatch(app, job([[0, '{"Interfere":{"pk":"a"}}'], [1, '{"Bump":{"pk":"a"}}']]));
      const { commitMs: _commitMs, ...stats } = result.stats;
      assert.deepEqual(stats, { calls: 2, errors: 0, attempts: 2, rerunCalls: 2 });
      assert.deepEqual(unpackEffects(result.packed!, ['c1', 'c2']), [
        { kind: 'send', connectionId: 'c1', text: '{"pk":"a","seen":100}' },
        { kind: 'send', connectionId: 'c2', text: '{"pk":"a","value":101}' },
      ]);
    } finally {
      close();
    }
  });
});
