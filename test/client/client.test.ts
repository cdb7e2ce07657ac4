/**
 * The client's own logic over a real WebSocket, against the v1 PROTOCOL STAND-IN (./v1-peer.ts,
 * not lexicons: the server side of v1 comes in phase 2, which repeats these against the real
 * server): `$connect` admission, correlation of 10k concurrent calls, timeouts, reconnect during
 * a burst, replay order, refused auth, headers re-evaluated per connect, backoff bounds, close.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ClientCode, ClientError, createClient, WireCode, type Client, type ClientOptions, type ClientState, type StateEvent } from '../../src/client/index.js';
import { backoffDelay } from '../../src/client/backoff.js';
import { V1Peer, type Outcome, type PeerConnection } from './v1-peer.js';

const peers: V1Peer[] = [];
const clients: Client[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const p of peers) await p.close();
});

async function startPeer(options: Parameters<typeof V1Peer.start>[0] = {}, port = 0): Promise<V1Peer> {
  const peer = await V1Peer.start(options, port);
  peers.push(peer);
  return peer;
}

function connect(url: string, options: Partial<ClientOptions> = {}): Client {
  const client = createClient({ url, WebSocket, reconnect: { baseDelayMs: 10, maxDelayMs: 50 }, ...options });
  clients.push(client);
  return client;
}

/** Resolves with the next state event `state` (matching `match`), bounded in time. */
function nextState<S extends ClientState>(client: Client, state: S, match: (e: StateEvent & { state: S }) => boolean = () => true, timeoutMs = 10_000): Promise<StateEvent & { state: S }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${state} state within ${timeoutMs} ms (now ${client.state})`));
    }, timeoutMs);
    const off = client.onState((e) => {
      if (e.state === state && match(e as StateEvent & { state: S })) {
        clearTimeout(timer);
        off();
        resolve(e as StateEvent & { state: S });
      }
    });
  });
}

const echo = (args: Record<string, unknown>): Outcome => ({ items: [{ Echo: args }] });

function codeOf(result: PromiseSettledResult<unknown>): string | undefined {
  return result.status === 'rejected' ? (result.reason as ClientError).code : undefined;
}

describe('client: admission ($connect, $connected)', () => {
  it('sends header data in the first frame, never in the URL, and sends no call before $connected', async () => {
    const peer = await startPeer({ holdAdmission: true, signals: { Echo: echo } });
    const client = connect(peer.url, { headers: { Login: { email: 'a@b.c', password: 'secret pw' } } });
    const pushed: unknown[] = [];
    client.on('Login', (payload) => pushed.push(payload));
    const calls = [1, 2, 3].map((n) => client.call('Echo', { n }));
    const [conn] = (await once(peer, 'connect-frame')) as [PeerConnection];
    assert.deepEqual(conn.headers, { Login: { email: 'a@b.c', password: 'secret pw' } });
    assert.equal(conn.url, '/');
    assert.equal(client.state, 'connecting');
    const opened = nextState(client, 'open');
    conn.admit();
    assert.equal((await opened).state, 'open');
    assert.deepEqual(await Promise.all(calls), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal(conn.early, 0, 'no frame before admission');
    assert.deepEqual(pushed, [{ ok: true }], 'items the Headers sent before $connected reach on()');
    assert.equal(typeof client.connectionId, 'string');
  });
});

describe('client: calls', () => {
  it('correlates 10,000 concurrent calls answered out of order: each settles once with its own reply, in list frames', async () => {
    const peer = await startPeer({
      ordered: false,
      signals: { Echo: (args) => new Promise<Outcome>((resolve) => setTimeout(() => resolve(echo(args)), Math.floor(Math.random() * 20))) },
    });
    const client = connect(peer.url);
    await nextState(client, 'open');
    const N = 10_000;
    let settlements = 0;
    const calls = Array.from({ length: N }, (_, n) =>
      client.call('Echo', { n }, { timeoutMs: 60_000 }).finally(() => {
        settlements++;
      }),
    );
    const results = await Promise.allSettled(calls);
    assert.equal(settlements, N);
    results.forEach((r, n) => assert.deepEqual(r, { status: 'fulfilled', value: { n } }));
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

  it('rejects with the server code and messages, and resolves undefined when the reply has another name', async () => {
    const peer = await startPeer({
      signals: {
        Fail: () => ({ error: { code: 'NOT_ALLOWED', message: 'only admins' } }),
        Other: () => ({ items: [{ Something: 1 }] }),
      },
    });
    const client = connect(peer.url);
    const errors: unknown[] = [];
    client.on('Errors', (messages, item) => errors.push([messages, item.code]));
    await assert.rejects(client.call('Fail'), (err: unknown) => err instanceof ClientError && err.code === 'NOT_ALLOWED' && err.message === 'only admins');
    await assert.rejects(client.call('Nope'), (err: unknown) => err instanceof ClientError && err.code === WireCode.UNKNOWN_SIGNAL && err.message === 'No signal [Nope]');
    assert.equal(await client.call('Other'), undefined);
    assert.deepEqual(errors, [
      [['only admins'], 'NOT_ALLOWED'],
      [['No signal [Nope]'], 'UNKNOWN_SIGNAL'],
    ]);
  });

  it('times out a call without an outcome (a late reply then reaches on() only)', async () => {
    const peer = await startPeer({
      ordered: false,
      signals: { Never: () => 'none', Late: () => new Promise<Outcome>((resolve) => setTimeout(() => resolve({ items: [{ Late: 'now' }] }), 300)) },
    });
    const client = connect(peer.url);
    await nextState(client, 'open');
    const t0 = performance.now();
    await assert.rejects(client.call('Never', {}, { timeoutMs: 150 }), (err: unknown) => err instanceof ClientError && err.code === ClientCode.CALL_TIMEOUT);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 149 && elapsed < 1500, `timed out after ${elapsed} ms`);
    const late = new Promise((resolve) => client.on('Late', resolve));
    await assert.rejects(client.call('Late', {}, { timeoutMs: 50 }), (err: unknown) => (err as ClientError).code === ClientCode.CALL_TIMEOUT);
    assert.equal(await late, 'now');
  });

  it('delivers untagged pushes by name; handlers can be removed', async () => {
    const peer = await startPeer();
    const client = connect(peer.url);
    await nextState(client, 'open');
    const got: unknown[] = [];
    const off = client.on('CreateChatMessage', (m) => got.push(m));
    const second = new Promise((resolve) => client.on('Done', resolve));
    peer.push([{ CreateChatMessage: { content: 'hi' } }, { Other: 1 }]);
    peer.push([{ Done: true }]);
    await second;
    off();
    const third = new Promise((resolve) => client.on('Done', resolve));
    peer.push([{ CreateChatMessage: { content: 'unseen' } }, { Done: true }]);
    await third;
    assert.deepEqual(got, [{ content: 'hi' }]);
  });

  it('rejects an aborted call with ABORTED; close() rejects unsettled calls with CLOSED and stops', async () => {
    const peer = await startPeer({ signals: { Never: () => 'none' } });
    const client = connect(peer.url);
    await nextState(client, 'open');
    const controller = new AbortController();
    const aborted = client.call('Never', {}, { signal: controller.signal });
    controller.abort();
    await assert.rejects(aborted, (err: unknown) => (err as ClientError).code === ClientCode.ABORTED);
    const pending = client.call('Never');
    await peer.waitForCall('Never', 2);
    const closed = nextState(client, 'closed');
    client.close();
    await assert.rejects(pending, (err: unknown) => (err as ClientError).code === ClientCode.CLOSED);
    const event = await closed;
    assert.deepEqual([event.code, event.error], [1000, undefined]);
    await assert.rejects(client.call('Never'), (err: unknown) => (err as ClientError).code === ClientCode.CLOSED);
  });
});

describe('client: reconnect', () => {
  it('a burst across a dropped connection: answered calls resolve, in-flight ones reject CONNECTION_LOST, calls made meanwhile wait and resolve; none hangs', async () => {
    const peer = await startPeer({ signals: { Echo: (args) => new Promise<Outcome>((resolve) => setImmediate(() => resolve(echo(args)))) } });
    const client = connect(peer.url);
    await nextState(client, 'open');
    const timeoutMs = 20_000;
    let settlements = 0;
    const count = <T>(p: Promise<T>) =>
      p.finally(() => {
        settlements++;
      });
    const burst = Array.from({ length: 2000 }, (_, n) => count(client.call('Echo', { n }, { timeoutMs })));
    await peer.waitForCall('Echo', 500);
    const lost = nextState(client, 'disconnected');
    peer.dropAll();
    const event = await lost;
    assert.equal(event.code, 1006);
    const waiting = Array.from({ length: 200 }, (_, n) => count(client.call('Echo', { n: 10_000 + n }, { timeoutMs })));
    const results = await Promise.allSettled(burst);
    const late = await Promise.allSettled(waiting);
    assert.equal(settlements, 2200);
    const fulfilled = results.filter((r) => r.status === 'fulfilled').length;
    const connectionLost = results.filter((r) => codeOf(r) === ClientCode.CONNECTION_LOST).length;
    assert.ok(fulfilled > 0 && connectionLost > 0, `fulfilled ${fulfilled}, connection lost ${connectionLost}`);
    assert.equal(fulfilled + connectionLost, 2000, 'no other outcome (no timeout)');
    results.forEach((r, n) => r.status === 'fulfilled' && assert.deepEqual(r.value, { n }));
    late.forEach((r, n) => assert.deepEqual(r, { status: 'fulfilled', value: { n: 10_000 + n } }));
    assert.ok(peer.calls.filter((c) => c.connection === 2).length === 200, 'the waiting calls went on the new connection');
  });

  it('re-sends replay calls in order after $connected, before waiting calls; a refused or aborted replay is not re-sent', async () => {
    const peer = await startPeer({
      signals: {
        Subscribe: (args) => ({ items: [{ Subscribe: args }] }),
        Post: (args) => ({ items: [{ Post: args }] }),
        Bad: () => ({ error: { code: 'CHANNEL_NOT_FOUND', message: 'no channel' } }),
      },
    });
    const client = connect(peer.url);
    let subscribeItems = 0;
    client.on('Subscribe', () => subscribeItems++);
    const a = client.call('Subscribe', { channel: 'a' }, { replay: true });
    const b = client.call('Subscribe', { channel: 'b' }, { replay: true });
    const bad = client.call('Bad', {}, { replay: true });
    const controller = new AbortController();
    const c = client.call('Subscribe', { channel: 'c' }, { replay: true, signal: controller.signal });
    assert.deepEqual(await Promise.all([a, b, c]), [{ channel: 'a' }, { channel: 'b' }, { channel: 'c' }]);
    await assert.rejects(bad, (err: unknown) => (err as ClientError).code === 'CHANNEL_NOT_FOUND');
    controller.abort();
    const lost = nextState(client, 'disconnected');
    peer.dropAll();
    await lost;
    const post = client.call('Post', { n: 1 });
    // A call made by an `open` handler (e.g. fetching history) goes after the replays and the waiting calls.
    const fromHandler = new Promise((resolve) => client.onState((e) => e.state === 'open' && resolve(client.call('Post', { n: 0 }))));
    assert.deepEqual(await post, { n: 1 });
    assert.deepEqual(await fromHandler, { n: 0 });
    const second = peer.calls.filter((call) => call.connection === 2).map((call) => [call.name, call.args]);
    assert.deepEqual(second, [
      ['Subscribe', { channel: 'a' }],
      ['Subscribe', { channel: 'b' }],
      ['Post', { n: 1 }],
      ['Post', { n: 0 }],
    ]);
    assert.equal(subscribeItems, 5, 'replayed replies reach on() (3 first, 2 replayed)');
  });

  it('evaluates a headers function at every connect (Register once, then Login)', async () => {
    const peer = await startPeer();
    let registered = false;
    const client = connect(peer.url, {
      headers: () => {
        const headers = registered ? { Login: { email: 'a@b.c', password: 'pw' } } : { Register: { email: 'a@b.c', password: 'pw' } };
        registered = true;
        return Promise.resolve(headers);
      },
    });
    await nextState(client, 'open');
    peer.dropAll();
    await nextState(client, 'open');
    assert.deepEqual(
      peer.connections.map((c) => Object.keys(c.headers ?? {})),
      [['Register'], ['Login']],
    );
  });

  it('stops reconnecting on AUTH_FAILED and says so; waiting calls reject with it', async () => {
    const peer = await startPeer({ auth: () => ({ code: 'AUTH_FAILED', message: 'wrong password' }) });
    const client = connect(peer.url, { headers: { Login: { email: 'a@b.c', password: 'nope' } } });
    const waiting = client.call('Echo', {});
    const closed = await nextState(client, 'closed');
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'Authentication failed: wrong password');
    assert.ok(closed.error instanceof ClientError && closed.error.code === WireCode.AUTH_FAILED && closed.error.message === 'Authentication failed: wrong password');
    await assert.rejects(waiting, (err: unknown) => (err as ClientError).code === WireCode.AUTH_FAILED);
    // No reconnect: with 10-50 ms backoff a second connection would come within 300 ms.
    await assert.rejects(once(peer, 'connection', { signal: AbortSignal.timeout(300) }), { name: 'AbortError' });
    assert.equal(peer.connections.length, 1);
    assert.equal(client.state, 'closed');
  });

  it('reconnects after other refusals (RATE_LIMITED), reporting them', async () => {
    let refusals = 1;
    const peer = await startPeer({ auth: () => (refusals-- > 0 ? { code: 'RATE_LIMITED', message: 'too many login attempts' } : true) });
    const client = connect(peer.url);
    const lost = await nextState(client, 'disconnected');
    assert.equal(lost.error?.code, WireCode.RATE_LIMITED);
    await nextState(client, 'open');
    assert.equal(peer.connections.length, 2);
  });

  it('gives up a connection not admitted within connectTimeoutMs and retries', async () => {
    const peer = await startPeer({ silent: true });
    const client = connect(peer.url, { connectTimeoutMs: 150 });
    const lost = await nextState(client, 'disconnected');
    assert.deepEqual([lost.code, lost.reason], [1006, 'no $connected within 150 ms']);
    await once(peer, 'connection');
    assert.ok(peer.connections.length >= 2);
  });

  it('calls made while the server is down wait up to their timeout, and go out once it is back', async () => {
    const peer = await startPeer({ signals: { Echo: echo } });
    const port = peer.port;
    const client = connect(peer.url);
    await nextState(client, 'open');
    await peer.close();
    await nextState(client, 'disconnected');
    await assert.rejects(client.call('Echo', { n: 1 }, { timeoutMs: 200 }), (err: unknown) => (err as ClientError).code === ClientCode.CALL_TIMEOUT);
    const waiting = client.call('Echo', { n: 2 }, { timeoutMs: 10_000 });
    await startPeer({ signals: { Echo: echo } }, port);
    assert.deepEqual(await waiting, { n: 2 });
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

  it('waits for connect() when autoConnect is false', async () => {
    const peer = await startPeer({ signals: { Echo: echo } });
    const client = connect(peer.url, { autoConnect: false });
    assert.equal(client.state, 'disconnected');
    const reply = client.call('Echo', { n: 1 });
    client.connect();
    assert.deepEqual(await reply, { n: 1 });
    assert.equal(peer.connections.length, 1);
  });
});
