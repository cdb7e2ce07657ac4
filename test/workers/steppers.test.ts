/**
 * How a worker runs user code in transactions (src/workers/steppers.ts), over a real shared store
 * on this thread: a failed step of a batch rolls back to its savepoint (writes and recorded
 * effects), the one begin/commit/retry loop re-runs a conflicting attempt and reports a unique
 * violation found at commit, an isolated step turns it into a UNIQUE error with its effects
 * undone, and a job the main thread aborted (progress slots) never commits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isLexiconsError } from '../../src/errors.js';
import type { Db } from '../../src/storage/api.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { ConnectionHandle } from '../../src/workers/handles.js';
import { createProgressBuffer, ProgressReader, ProgressWriter } from '../../src/workers/progress.js';
import { ChannelView } from '../../src/workers/channel-view.js';
import { Recorder } from '../../src/workers/recorder.js';
import { BatchStepper, commitWithRetries, IsolatedStepper } from '../../src/workers/steppers.js';

class Note extends Model {
  static title = field.str({ unique: true });
}

function setUp(): { store: SharedStore; recorder: Recorder; ws: ConnectionHandle; progress: ProgressWriter; reader: ProgressReader } {
  const store = SharedStore.create(compileSchema([Note]), { initialRows: 4 });
  const recorder = new Recorder(new ChannelView([]));
  const ws = new ConnectionHandle({ id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] }, recorder);
  const buffer = createProgressBuffer(1);
  const reader = new ProgressReader(buffer);
  reader.reset(0);
  return { store, recorder, ws, progress: new ProgressWriter(buffer, 0), reader };
}

const titles = (store: SharedStore): string[] =>
  store
    .runSync((db: Db) => db.query(Note))
    .value.map((n) => n.title)
    .sort();

describe('BatchStepper', () => {
  it('rolls a failed step back to its savepoint: its writes and effects; the batch commits the rest', () => {
    const { store, recorder, ws } = setUp();
    const txn = store.begin();
    const stepper = new BatchStepper(txn, recorder);
    stepper.step(ws, (db) => {
      db.create(Note, { title: 'kept' });
      ws.send('kept');
    });
    assert.throws(
      () =>
        stepper.step(ws, (db) => {
          db.create(Note, { title: 'lost' });
          ws.send('lost');
          ws.auth = 'lost';
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(txn.commit().ok, true);
    assert.deepEqual(titles(store), ['kept']);
    assert.equal(ws.auth, undefined);
    assert.deepEqual(recorder.effects(), [{ kind: 'send', connectionId: 'c1', text: '"kept"' }]);
  });
});

describe('commitWithRetries', () => {
  it('re-runs an attempt that conflicts with a concurrent commit, undoing its outside effects', async () => {
    const { store, progress } = setUp();
    let runs = 0;
    let undone = 0;
    const outcome = await commitWithRetries(store, progress, 'test', {
      run: (txn) => {
        runs++;
        const seen = txn.db.count(Note);
        // Another writer commits between this attempt's read and its commit.
        if (runs === 1) store.runSync((db) => db.create(Note, { title: 'concurrent' }));
        txn.db.create(Note, { title: `after ${seen}` });
        return seen;
      },
      undo: () => undone++,
    });
    const { commitMs, ...rest } = outcome;
    assert.deepEqual(rest, { committed: true, value: 1, publications: [] });
    assert.ok(commitMs > 0 && commitMs < 5000, `time in txn.commit() over both attempts: ${commitMs} ms`);
    assert.equal(runs, 2);
    assert.equal(undone, 1);
    assert.deepEqual(titles(store), ['after 1', 'concurrent']);
  });

  it('reports a unique violation found at commit instead of retrying it', async () => {
    const { store, progress } = setUp();
    const outcome = await commitWithRetries(store, progress, 'test', {
      run: (txn) => {
        txn.db.create(Note, { title: 'twice' });
        store.runSync((db) => db.create(Note, { title: 'twice' }));
      },
      undo: () => undefined,
    });
    assert.equal(outcome.committed, false);
    assert.match(outcome.committed ? '' : outcome.uniqueViolation, /twice/);
    assert.deepEqual(titles(store), ['twice']);
  });

  it('never commits a job the main thread aborted while it was in user code', async () => {
    const { store, progress, reader } = setUp();
    let undone = false;
    await assert.rejects(
      commitWithRetries(store, progress, 'test', {
        run: async (txn) => {
          progress.enter(0);
          txn.db.create(Note, { title: 'aborted' });
          assert.equal(reader.tryAbort(0, Date.now() + 10, 0), true);
        },
        undo: () => {
          undone = true;
        },
      }),
      (err: unknown) => isLexiconsError(err, ErrorCode.TIMEOUT),
    );
    assert.equal(undone, true);
    assert.deepEqual(titles(store), []);
  });
});

describe('IsolatedStepper', () => {
  it('turns a unique violation at commit into a UNIQUE error and drops the step\'s effects', async () => {
    const { store, recorder, ws, progress } = setUp();
    const stepper = new IsolatedStepper(store, recorder, progress);
    ws.send('before');
    await assert.rejects(
      stepper.step(ws, (db) => {
        db.create(Note, { title: 'taken' });
        ws.send('inside');
        store.runSync((other) => other.create(Note, { title: 'taken' }));
      }),
      (err: unknown) => isLexiconsError(err, ErrorCode.UNIQUE),
    );
    assert.equal(stepper.attempts, 1);
    assert.deepEqual(recorder.effects(), [{ kind: 'send', connectionId: 'c1', text: '"before"' }]);
    assert.equal(await stepper.step(ws, (db) => db.count(Note)), 1);
  });
});
