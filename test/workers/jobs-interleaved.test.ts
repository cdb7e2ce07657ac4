/**
 * Two jobs on one worker thread at once (a cluster node runs several per worker: src/main/pool.ts):
 * they interleave at their awaits, so each job's state must be its own. Here job A creates a
 * channel, awaits, and joins it; job B runs in full during A's await. With one channel view per
 * thread (reset by every job, as before src/workers/channel-view.ts `forJob`), B wiped A's
 * created channel and A's join failed with CHANNEL_NOT_FOUND.
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

class Note extends Model {
  static title = field.str();
}

let release: () => void = () => undefined;
const gate = (): Promise<void> => new Promise((resolve) => (release = resolve));

class CreateAndJoin extends Signal {
  static override args = { name: field.str() };
  async execute({ name, sv, ws }: SignalContext<{ name: string }>) {
    sv.createChannel(name);
    await gate();
    ws.subscribe(name);
  }
}

class CreateOther extends Signal {
  execute({ sv, db }: SignalContext) {
    sv.createChannel('other');
    db.create(Note, { title: 'b' });
  }
}

class Lobby extends Channel {}

const server = new Server({ models: [Note], signals: [CreateAndJoin, CreateOther], channels: [Lobby] });

function job(conn: ConnectionSnapshot, text: string, slot: number): BatchJob {
  return { ...encodeBatch([conn], [{ kind: UNIT_FRAME, text }], [0], 0), slot, jobId: slot };
}

describe('jobs interleaved on one worker thread', () => {
  it('a job created channel stays its own while another job runs during its await', async () => {
    const { app, close } = inThreadWorkerApp(server, SharedStore.create(compileSchema([Note]), { initialRows: 4 }));
    try {
      const a: ConnectionSnapshot = { id: 'a', address: '127.0.0.1', auth: undefined, channels: [] };
      const b: ConnectionSnapshot = { id: 'b', address: '127.0.0.1', auth: undefined, channels: [] };
      const first = runBatch(app, job(a, '{"CreateAndJoin":{"name":"room-a"}}', 1));
      // A waits at its gate; B runs to its commit meanwhile.
      const second = await runBatch(app, job(b, '{"CreateOther":{}}', 2));
      release();
      const result = await first;
      assert.deepEqual(unpackEffects(result.packed!, ['a']), [
        { kind: 'createChannel', channel: 'room-a' },
        { kind: 'subscribe', connectionId: 'a', channel: 'room-a' },
      ]);
      assert.deepEqual(unpackEffects(second.packed!, ['b']), [{ kind: 'createChannel', channel: 'other' }]);
      assert.equal(result.stats.errors, 0);
    } finally {
      close();
    }
  });
});
