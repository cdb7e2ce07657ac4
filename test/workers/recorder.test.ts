/**
 * The worker-side recorder behind `ws` and `sv` (src/workers/recorder.ts, src/workers/handles.ts):
 * merging of response items and errors, mark/restore of effects, connection state and channel
 * changes (what a failed call's savepoint rolls back), dropped subscriptions of a refused
 * connection, and pack(): the packed form reads back (job-contract unpackEffects) as the same
 * ordered effects.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OP_EFFECT, OP_PUBLISH, OP_SEND, OP_WORDS, opCode, unpackEffects, type ConnectionSnapshot } from '../../src/job-contract.js';
import { ConnectionHandle, WorkerServerHandle } from '../../src/workers/handles.js';
import { ChannelView } from '../../src/workers/channel-view.js';
import { Recorder } from '../../src/workers/recorder.js';

function snapshot(id: string, channels: string[] = []): ConnectionSnapshot {
  return { id, address: '127.0.0.1', auth: undefined, channels };
}

function setUp(ids: string[] = ['c1']): { recorder: Recorder; handles: ConnectionHandle[]; sv: WorkerServerHandle } {
  const recorder = new Recorder(new ChannelView(['Public', 'Other']));
  const handles = ids.map((id) => new ConnectionHandle(snapshot(id), recorder));
  return { recorder, handles, sv: new WorkerServerHandle(recorder, { info: async () => ({ connections: 0, channels: {} }), presence: async () => [] }) };
}

describe('Recorder', () => {
  it('merges response items of consecutive calls of one unit to the same channels, and errors to one caller', () => {
    const { recorder } = setUp();
    recorder.respond(0, '{"A":1}', ['Public', 'Other']);
    recorder.respond(0, '{"A":2}', ['Other', 'Public', 'Other']);
    recorder.respond(1, '{"A":3}', ['Other', 'Public']);
    recorder.error(1, 'c1', 'first', 'EXECUTION', 7);
    recorder.error(1, 'c1', 'second');
    recorder.respond(1, '{"B":1}', []);
    assert.deepEqual(recorder.effects(), [
      { kind: 'publish', channels: ['Public', 'Other'], text: '[{"A":1},{"A":2}]' },
      { kind: 'publish', channels: ['Other', 'Public'], text: '[{"A":3}]' },
      { kind: 'send', connectionId: 'c1', text: '[{"Errors":["first"],"code":"EXECUTION","$id":7},{"Errors":["second"]}]' },
    ]);
  });

  it('restore() rolls back effects, merged items, the connection state and channel changes to a mark', () => {
    const { recorder, handles, sv } = setUp();
    const ws = handles[0]!;
    recorder.respond(0, '{"A":1}', ['Public']);
    ws.subscribe('Public');
    const mark = recorder.mark(ws);
    recorder.respond(0, '{"A":2}', ['Public']);
    ws.auth = 'someone';
    ws.subscribe('Other');
    ws.unsubscribe('Public');
    sv.createChannel('Late');
    ws.close(4000, 'no');
    assert.equal(ws.closed, true);
    assert.equal(recorder.view.exists('Late'), true);
    recorder.restore(mark);
    assert.equal(ws.auth, undefined);
    assert.deepEqual(ws.channels, ['Public']);
    assert.equal(ws.closed, false);
    assert.equal(recorder.view.exists('Late'), false);
    assert.deepEqual(recorder.effects(), [
      { kind: 'publish', channels: ['Public'], text: '[{"A":1}]' },
      { kind: 'subscribe', connectionId: 'c1', channel: 'Public' },
    ]);
  });

  it('dropSubscriptions() forgets the subscriptions a connection made since a point, and nothing else', () => {
    const { recorder, handles } = setUp(['c1', 'c2']);
    handles[1]!.subscribe('Public');
    const from = recorder.length;
    handles[0]!.subscribe('Public');
    handles[0]!.send('hello');
    handles[1]!.subscribe('Other');
    handles[0]!.subscribe('Other');
    recorder.dropSubscriptions('c1', from);
    assert.deepEqual(recorder.effects(), [
      { kind: 'subscribe', connectionId: 'c2', channel: 'Public' },
      { kind: 'send', connectionId: 'c1', text: '"hello"' },
      { kind: 'subscribe', connectionId: 'c2', channel: 'Other' },
    ]);
  });

  it('pack() is the same ordered effects: sends and publishes as ops over UTF-8 bytes, the rest in extra', () => {
    const { recorder, handles, sv } = setUp(['c1', 'c2']);
    handles[0]!.send({ text: 'héllo ✓' });
    recorder.respond(0, '{"Say":"ü"}', ['Public']);
    handles[1]!.auth = { user: 'u2' };
    recorder.error(1, 'c2', 'nope');
    sv.broadcast('all', ['Public', 'Other']);
    // A send to a connection outside the job (by id) cannot be an op: it rides as an effect.
    recorder.push({ kind: 'send', connectionId: 'elsewhere', text: '"x"' });
    sv.dropChannel('Gone');
    const expected = recorder.effects();
    const packed = recorder.pack(handles);
    const ops = Array.from({ length: packed.ops.length / OP_WORDS }, (_, i) => opCode(packed.ops, i * OP_WORDS));
    assert.deepEqual(ops, [OP_SEND, OP_PUBLISH, OP_EFFECT, OP_SEND, OP_PUBLISH, OP_EFFECT, OP_EFFECT]);
    assert.deepEqual(unpackEffects(packed, ['c1', 'c2']), expected);
  });

  it('pack() of an empty recording is empty', () => {
    const { recorder, handles } = setUp();
    const packed = recorder.pack(handles);
    assert.equal(packed.ops.length, 0);
    assert.equal(packed.bytes.length, 0);
    assert.deepEqual(unpackEffects(packed, ['c1']), []);
  });
});
