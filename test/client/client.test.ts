/**
 * The client's own logic where the real server cannot help: against the v1 PROTOCOL STAND-IN
 * (./v1-peer.ts, not lexicons) for what lexicons never does (outcomes out of call order,
 * duplicated outcome frames, an open socket without lexicons.v1), and without a server
 * (backoff bounds, reconnect giving up, options). Everything else runs against the real server:
 * ./server-calls.test.ts and ./server-connect.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ClientCode, ClientError, createClient, WireCode, type Client, type ClientOptions, type ClientState, type StateEvent } from '../../src/client/index.js';
import { backoffDelay } from '../../src/client/backoff.js';
import { echoBurst, nextState } from './client-helpers.js';
import { V1Peer, type Outcome } from './v1-peer.js';

const peers: V1Peer[] = [];
const clients: Client[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const p of peers) await p.close();
});

async function startPeer(options: Parameters<typeof V1Peer.start>[0] = {}): Promise<V1Peer> {
  const peer = await V1Peer.start(options);
  peers.push(peer);
  return peer;
}

function connect(url: string, options: Partial<ClientOptions> = {}): Client {
  const client = createClient({ url, WebSocket, reconnect: { baseDelayMs: 10, maxDelayMs: 50 }, ...options });
  clients.push(client);
  return client;
}

const echo = (args: Record<string, unknown>): Outcome => ({ items: [{ Echo: args }] });

describe('client: calls', () => {
  it('correlates 10,000 concurrent calls answered out of order: each settles once with its own reply, in list frames', async () => {
    const peer = await startPeer({
      ordered: false,
      signals: { Echo: (args) => new Promise<Outcome>((resolve) => setTimeout(() => resolve(echo(args)), Math.floor(Math.random() * 20))) },
    });
    const client = connect(peer.url);
    await nextState(client, 'open');
    const N = 10_000;
    await echoBurst(client, N);
    const frames = peer.frames.get(1) ?? 0;
    assert.ok(frames <= N / 100 + 1, `${N} calls in ${frames} frames (at most 100 calls each)`);
  });

  it('ignores a duplicated outcome frame (the copy reaches on() only) and resolves $ok with undefined', async () => {
    const peer = await startPeer({ duplicate: true, signals: { Echo: echo, Ack: () => 'ok' } });
    const client = connect(peer.url);
    let delivered = 0;
    client.on('Echo', () => delivered++);
    const results = await Promise.all(Array.from({ length: 100 }, (_, n) => client.call('Echo', { n })));
    results.forEach((r, n) => assert.deepEqual(r, { n }));
    assert.equal(await client.call('Ack'), undefined);
    await client.call('Echo', { n: -1 }); // its copy arrives after the copies of the 100
    assert.equal(delivered, 202);
  });

});

describe('client: a server without lexicons.v1', () => {
  it('stops with PROTOCOL when the socket has no lexicons.v1 (no reconnect)', async () => {
    const peer = await startPeer();
    // `ws` and browsers fail a handshake without the subprotocol they asked for; a WebSocket class
    // that opens anyway (here: one that does not ask) must still be caught.
    class Tolerant extends WebSocket {
      constructor(url: string) {
        super(url);
      }
    }
    const client = connect(peer.url, { WebSocket: Tolerant });
    const waiting = client.call('Echo', {});
    const closed = await nextState(client, 'closed');
    assert.equal(closed.error?.code, WireCode.PROTOCOL);
    assert.equal(closed.error?.message, 'the server does not speak lexicons.v1 (an older lexicons, or not a lexicons server)');
    await assert.rejects(waiting, (err: unknown) => (err as ClientError).code === WireCode.PROTOCOL);
    assert.equal(peer.connections.length, 1);
  });
});

describe('client: backoff', () => {
  it('full jitter below min(max, base * 2^attempt)', () => {
    const caps = [100, 200, 400, 800, 1000, 1000];
    caps.forEach((cap, attempt) => {
      assert.equal(backoffDelay(attempt, 100, 1000, () => 0), 0);
      assert.equal(backoffDelay(attempt, 100, 1000, () => 0.999999), cap - 1);
      assert.equal(backoffDelay(attempt, 100, 1000, () => 0.5), cap / 2);
    });
    assert.equal(backoffDelay(1e6, 100, 1000, () => 0.999999), 999, 'no overflow for large attempts');
  });

  it('retries within the bounds, then stops with RECONNECT_FAILED after maxAttempts', async () => {
    const peer = await startPeer();
    const url = peer.url;
    await peer.close(); // nothing listens: every attempt fails at once (1006)
    const client = connect(url, { reconnect: { baseDelayMs: 8, maxDelayMs: 30, maxAttempts: 5 } });
    const delays: Array<[number, number]> = [];
    client.onState((e) => {
      if (e.state === 'disconnected') delays.push([e.attempt, e.delayMs]);
    });
    const closed = await nextState(client, 'closed');
    assert.equal(closed.error?.code, ClientCode.RECONNECT_FAILED);
    assert.deepEqual(
      delays.map(([attempt]) => attempt),
      [1, 2, 3, 4, 5],
    );
    for (const [attempt, delay] of delays) assert.ok(delay >= 0 && delay < Math.min(30, 8 * 2 ** (attempt - 1)), `attempt ${attempt}: ${delay} ms`);
  });
});

describe('client: options', () => {
  it('refuses bad options with exact messages', () => {
    assert.throws(() => createClient({ url: 'ws://x' }), { message: 'createClient: no WebSocket class: pass options.WebSocket (in Node 20, the ws package: import WebSocket from "ws")' });
    assert.throws(() => createClient({ url: 5 as never, WebSocket }), { message: 'createClient: options.url must be a ws:// or wss:// URL string' });
    assert.throws(() => createClient({ url: 'ws://x', WebSocket, timeoutMs: 0 }), { message: 'createClient: timeoutMs must be a positive number, got 0' });
    assert.throws(() => createClient({ url: 'ws://x', WebSocket, reconnect: { maxDelayMs: -1 } }), { message: 'createClient: reconnect.maxDelayMs must be a positive number, got -1' });
  });

});
