/**
 * The main-thread state in the hub (src/main/hub.ts) without sockets: the channel registry
 * (src/main/channels.ts: run-time channels, drop, fan-out to several channels once per
 * recipient) and the log (src/main/log.ts: a throwing onLog is reported once per status). The
 * metrics have their own test (metrics.test.ts). The uWS app and sockets are stand-ins that record calls.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { createHub, openConnectionCount } from '../../src/main/hub.js';
import { createLogger } from '../../src/main/log.js';
import { SocketConnection, type SocketUserData } from '../../src/main/socket-connection.js';

function open(seen: string[], name: string): SocketConnection {
  const conn = new SocketConnection('127.0.0.1', 10);
  conn.state = 'open';
  conn.socket = {
    cork: (fn: () => void) => fn(),
    send: (text: string) => seen.push(`${name} <- ${text}`),
    subscribe: (topic: string) => seen.push(`${name} + ${topic}`),
    unsubscribe: (topic: string) => seen.push(`${name} - ${topic}`),
  } as unknown as WebSocket<SocketUserData>;
  return conn;
}

describe('ChannelRegistry', () => {
  it('creates and drops run-time channels (members leave), refuses to drop declared ones, bumps its version', () => {
    const seen: string[] = [];
    const logs: string[] = [];
    const hub = createHub(['Public'], (status, data) => logs.push(`${status}: ${String(data.message ?? data.channel)}`));
    const a = open(seen, 'a');
    hub.channels.create('Room');
    assert.equal(hub.channels.version, 1);
    assert.equal(hub.channels.subscribe(a, 'Room'), true);
    assert.equal(hub.channels.subscribe(a, 'Nowhere'), false);
    hub.channels.drop('Room');
    hub.channels.drop('Public');
    assert.deepEqual(seen, ['a + Room', 'a - Room']);
    assert.deepEqual([...a.channels], []);
    assert.equal(hub.channels.version, 2);
    assert.deepEqual(hub.channels.runtimeNames(), []);
    assert.deepEqual(logs, ['CHANNEL-NOT-FOUND: Nowhere', 'ERROR: Channel [Public] is declared and cannot be dropped']);
  });

  it('publishes one payload for several channels once to each subscriber of any of them', () => {
    const seen: string[] = [];
    const hub = createHub(['A', 'B'], () => undefined);
    const published: string[] = [];
    hub.channels.attach({ publish: (topic: string, text: string) => published.push(`${topic}: ${text}`) } as unknown as TemplatedApp);
    const a = open(seen, 'a');
    const b = open(seen, 'b');
    for (const [conn, names] of [[a, ['A', 'B']], [b, ['B']]] as const) for (const name of names) hub.channels.subscribe(conn, name);
    seen.length = 0;
    assert.equal(hub.channels.publish(['A', 'B'], 'both'), 2);
    assert.deepEqual(seen.sort(), ['a <- both', 'b <- both']);
    assert.equal(hub.channels.publish(['B'], 'one'), 2);
    assert.deepEqual(published, ['B: one'], 'a single channel goes through uWS pub/sub');
    assert.deepEqual(hub.channels.sizes(), { A: 1, B: 2 });
    hub.connections.set(a.id, a).set(b.id, b);
    b.state = 'closed';
    assert.equal(openConnectionCount(hub), 1);
  });
});

describe('createLogger', () => {
  it('passes events to onLog; an onLog that throws is reported once per status on stderr', () => {
    const got: string[] = [];
    const written: string[] = [];
    const log = createLogger(
      (status) => {
        if (status === 'ERROR') throw new Error('hook broke');
        got.push(status);
      },
      { destination: { write: (line: string) => void written.push(line) } },
    );
    log('LISTEN', {});
    log('ERROR', {});
    log('ERROR', {});
    assert.deepEqual(got, ['LISTEN']);
    assert.equal(written.length, 1);
    assert.match(written[0]!, /"level":50,.*"status":"ERROR".*"msg":"onLog threw for status ERROR: hook broke"/);
  });
});
