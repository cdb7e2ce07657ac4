/**
 * The worker's executors on this thread, without piscina: a WorkerApp built by createWorkerApp
 * over a real shared store, talking to a real ControlHost over a MessageChannel (comlink), runs
 * a packed batch (src/workers/execute-batch.ts: frames, a connection attempt, a disconnection),
 * a Task and a hook (src/workers/execute-task.ts); batchFailureEffects answers every caller of a
 * batch that could not be saved.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, Header, Signal, Task, type HeaderContext, type SignalContext, type TaskContext } from '../../src/components.js';
import { encodeBatch, unpackEffects, UNIT_CONNECT, UNIT_DISCONNECT, UNIT_FRAME, type BatchJob, type ConnectionSnapshot } from '../../src/job-contract.js';
import { Server } from '../../src/server.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { batchFailureEffects, runBatch } from '../../src/workers/execute-batch.js';
import { runHook, runTask } from '../../src/workers/execute-task.js';
import { inThreadWorkerApp } from '../helpers/worker-app.js';

class Note extends Model {
  static title = field.str({ unique: true });
}
class AddNote extends Signal {
  static override args = { title: field.str() };
  execute({ title, db }: SignalContext<{ title: string }>) {
    db.create(Note, { title });
    return this.response({ title }, ['Public']);
  }
}
class Fail extends Signal {
  execute({ db, ws }: SignalContext) {
    db.create(Note, { title: 'never' });
    ws.send('never');
    throw new Error('boom');
  }
}
class Whoami extends Signal {
  async execute({ ws, sv }: SignalContext) {
    const info = await sv.info();
    ws.send({ auth: ws.auth ?? null, connections: info.connections });
  }
}
class Login extends Header {
  static override args = { ok: field.bool() };
  execute({ ok, ws }: HeaderContext<{ ok: boolean }>) {
    if (ok) ws.auth = 'user-1';
    return ok;
  }
}
class Public extends Channel {}
class Tick extends Task.Interval {
  override interval = 5;
  execute({ db }: TaskContext) {
    db.create(Note, { title: 'tick' });
  }
}

const server = new Server({ models: [Note], signals: [AddNote, Fail, Whoami], headers: [Login], channels: [Public], tasks: [Tick] });

function setUp(): ReturnType<typeof inThreadWorkerApp> {
  const store = SharedStore.create(compileSchema([Note]), { initialRows: 4 });
  return inThreadWorkerApp(server, store);
}

const c1: ConnectionSnapshot = { id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] };
const c2: ConnectionSnapshot = { id: 'c2', address: '127.0.0.1', auth: undefined, channels: [] };

function batch(): BatchJob {
  const units = [
    { kind: UNIT_FRAME, text: '[{"AddNote":{"title":"a"}},{"Fail":{}},{"Nope":{}}]' },
    { kind: UNIT_CONNECT, headerData: { Login: '{"ok": true}' } },
    { kind: UNIT_FRAME, text: '{"Whoami":{}}' },
    { kind: UNIT_DISCONNECT },
  ] as const;
  return { ...encodeBatch([c1, c2], units, [0, 1, 1, 0], 0), slot: 0, jobId: 0 };
}

describe('runBatch', () => {
  it('runs the units in order as one transaction: responses, rolled-back failures, unknown signals, a login', async () => {
    const { app, store, close } = setUp();
    try {
      const result = await runBatch(app, batch());
      const { commitMs, ...stats } = result.stats;
      assert.deepEqual(stats, { calls: 4, errors: 2, attempts: 1 });
      assert.ok(commitMs !== undefined && commitMs > 0, 'the commit was timed');
      assert.deepEqual(unpackEffects(result.packed!, ['c1', 'c2']), [
        { kind: 'publish', channels: ['Public'], text: '[{"AddNote":{"title":"a"}}]' },
        { kind: 'send', connectionId: 'c1', text: '[{"Errors":["boom"]},{"Errors":["No signal [Nope]"]}]' },
        { kind: 'open', connectionId: 'c2' },
        { kind: 'auth', connectionId: 'c2', auth: 'user-1' },
        { kind: 'admit', connectionId: 'c2', ok: true, reason: '' },
        { kind: 'send', connectionId: 'c2', text: '{"auth":"user-1","connections":2}' },
      ]);
      assert.deepEqual(
        store.runSync((db) => db.query(Note).map((n) => n.title)).value,
        ['a'],
      );
      assert.equal(result.logs.length, 1, 'the failed call is logged');
      assert.equal(result.logs[0]!.status, 'SIGNAL-ERROR');
    } finally {
      close();
    }
  });

  it('batchFailureEffects answers every frame with the error and refuses every connection attempt', () => {
    assert.deepEqual(batchFailureEffects(batch(), 'Not saved: disk full'), [
      { kind: 'send', connectionId: 'c1', text: '[{"Errors":["Not saved: disk full"]}]' },
      { kind: 'open', connectionId: 'c2' },
      { kind: 'admit', connectionId: 'c2', ok: false, reason: 'Not saved: disk full', code: 'NOT_SAVED' },
      { kind: 'send', connectionId: 'c2', text: '[{"Errors":["Not saved: disk full"]}]' },
    ]);
  });
});

describe('runTask / runHook', () => {
  it('runs an interval Task in its own transaction and reads its next interval', async () => {
    const { app, store, close } = setUp();
    try {
      const tasks = new Map([['Tick', Tick]]);
      const result = await runTask(app, tasks, { kind: 'task', slot: 1, jobId: 1, name: 'Tick', run: true });
      assert.equal(result.ok, true);
      assert.equal(result.next, 5);
      assert.equal(store.runSync((db) => db.count(Note)).value, 1);
      const ready = await runHook(app, { kind: 'hook', slot: 2, jobId: 2, hook: 'ready' });
      assert.deepEqual({ ok: ready.ok, effects: ready.effects, logs: ready.logs }, { ok: true, effects: [], logs: [] });
    } finally {
      close();
    }
  });
});
