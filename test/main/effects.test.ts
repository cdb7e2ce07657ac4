/**
 * Applying a batch's packed effects on the main thread (src/main/effects.ts applyPacked): the
 * effects a worker's Recorder packed reach the sockets in record order, consecutive frames to one
 * connection share one cork, a frame dropped by backpressure drops the rest of its run, and the
 * other effects (subscribe, auth, publish) interleave in order. The sockets and the uWS app are
 * stand-ins that record what they are asked to do.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { applyEffects, applyPacked } from '../../src/main/effects.js';
import { createHub, type Hub } from '../../src/main/hub.js';
import { SEND_DROPPED, SocketConnection, type SocketUserData } from '../../src/main/socket-connection.js';
import { ConnectionHandle, WorkerServerHandle } from '../../src/workers/handles.js';
import { ChannelView } from '../../src/workers/channel-view.js';
import { Recorder } from '../../src/workers/recorder.js';

/** What the stand-in sockets and app saw, in order. */
type Seen = Array<[string, ...unknown[]]>;

function text(data: unknown): string {
  return typeof data === 'string' ? data : Buffer.from(data as Uint8Array).toString('utf8');
}

function openConnection(hub: Hub, seen: Seen, name: string, dropAfter = Infinity): SocketConnection {
  const conn = new SocketConnection('127.0.0.1', 1000);
  let sent = 0;
  const socket = {
    cork: (fn: () => void) => {
      seen.push(['cork', name]);
      fn();
    },
    send: (data: unknown) => {
      seen.push(['send', name, text(data)]);
      return ++sent > dropAfter ? SEND_DROPPED : 1;
    },
    subscribe: (topic: string) => seen.push(['subscribe', name, topic]),
    unsubscribe: (topic: string) => seen.push(['unsubscribe', name, topic]),
    end: (code: number) => seen.push(['end', name, code]),
  };
  conn.socket = socket as unknown as WebSocket<SocketUserData>;
  conn.state = 'open';
  conn.admitted = true;
  hub.connections.set(conn.id, conn);
  return conn;
}

function setUp(): { hub: Hub; seen: Seen } {
  const seen: Seen = [];
  const hub = createHub(['Public'], () => undefined);
  hub.channels.attach({ publish: (topic: string, data: unknown) => seen.push(['publish', topic, text(data)]) } as unknown as TemplatedApp);
  return { hub, seen };
}

/** A worker-side recording over the snapshots of `conns` (as a batch would make it). */
function record(conns: SocketConnection[]): { recorder: Recorder; handles: ConnectionHandle[]; sv: WorkerServerHandle } {
  const recorder = new Recorder(new ChannelView(['Public']));
  const handles = conns.map((c) => new ConnectionHandle(c.snapshot(), recorder));
  return { recorder, handles, sv: new WorkerServerHandle(recorder, { info: async () => ({ connections: 0, channels: {} }), presence: async () => [] }) };
}

describe('applyPacked', () => {
  it('sends in record order; consecutive frames to one connection share one cork', () => {
    const { hub, seen } = setUp();
    const a = openConnection(hub, seen, 'a');
    const b = openConnection(hub, seen, 'b');
    const { recorder, handles } = record([a, b]);
    handles[0]!.send({ n: 1 });
    handles[0]!.send({ n: 2 });
    handles[1]!.send({ n: 3 });
    recorder.error(2, a.id, 'bad call');
    applyPacked(hub, [a, b], recorder.pack(handles));
    assert.deepEqual(seen, [
      ['cork', 'a'],
      ['send', 'a', '{"n":1}'],
      ['send', 'a', '{"n":2}'],
      ['cork', 'b'],
      ['send', 'b', '{"n":3}'],
      ['cork', 'a'],
      ['send', 'a', '[{"Errors":["bad call"]}]'],
    ]);
  });

  it('drops the rest of a run of frames once a send hits the backpressure limit', () => {
    const { hub, seen } = setUp();
    const a = openConnection(hub, seen, 'a', 1);
    const { recorder, handles } = record([a]);
    for (let n = 1; n <= 3; n++) handles[0]!.send(n);
    handles[0]!.close(1000, 'bye');
    applyPacked(hub, [a], recorder.pack(handles));
    assert.deepEqual(seen, [['cork', 'a'], ['send', 'a', '1'], ['send', 'a', '2'], ['end', 'a', 1000]]);
  });

  it('applies subscriptions, auth and publishes in order with the frames around them', () => {
    const { hub, seen } = setUp();
    const a = openConnection(hub, seen, 'a');
    const { recorder, handles, sv } = record([a]);
    handles[0]!.send('before');
    handles[0]!.subscribe('Public');
    handles[0]!.auth = 'user-1';
    recorder.respond(0, '{"Say":"hi"}', ['Public']);
    sv.broadcast({ all: true }, ['Public']);
    handles[0]!.send('after');
    applyPacked(hub, [a], recorder.pack(handles));
    assert.deepEqual(seen, [
      ['cork', 'a'],
      ['send', 'a', '"before"'],
      ['subscribe', 'a', 'Public'],
      ['publish', 'Public', '[{"Say":"hi"}]'],
      ['publish', 'Public', '{"all":true}'],
      ['cork', 'a'],
      ['send', 'a', '"after"'],
    ]);
    assert.equal(a.auth, 'user-1');
    assert.deepEqual([...a.channels], ['Public']);
  });

  it('skips frames for a connection that closed meanwhile, and applies the rest', () => {
    const { hub, seen } = setUp();
    const a = openConnection(hub, seen, 'a');
    const b = openConnection(hub, seen, 'b');
    const { recorder, handles } = record([a, b]);
    handles[0]!.send('to a');
    handles[1]!.send('to b');
    a.state = 'closed';
    a.socket = null;
    applyPacked(hub, [a, b], recorder.pack(handles));
    assert.deepEqual(seen, [['cork', 'b'], ['send', 'b', '"to b"']]);
  });

  it('applyEffects sends consecutive frames to one connection in one cork (tasks and hooks)', () => {
    const { hub, seen } = setUp();
    const a = openConnection(hub, seen, 'a');
    applyEffects(hub, [
      { kind: 'send', connectionId: a.id, text: '1' },
      { kind: 'send', connectionId: a.id, text: '2' },
      { kind: 'createChannel', channel: 'Late' },
      { kind: 'send', connectionId: 'gone', text: 'nobody' },
    ]);
    assert.deepEqual(seen, [['cork', 'a'], ['send', 'a', '1'], ['send', 'a', '2']]);
    assert.equal(hub.channels.exists('Late'), true);
  });
});
