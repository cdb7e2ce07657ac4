/**
 * The client against the REAL server (test/fixtures/apps/client-app.ts on loopback): connections.
 * `$connect` admission (header data in the first frame, merged with the URL's, frame wins; frames
 * before `$connected` dropped; a wrong first frame; no `$connect` in time; anonymous refused;
 * login attempts limited), refused auth stops reconnecting, headers evaluated per connect,
 * reconnect during a burst of calls (the server closing the connection, and a server restart),
 * replayed calls in order after every reconnect, calls waiting for the connection.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ClientCode, ClientError, createClient, WireCode, type Client, type ClientOptions, type ClientState, type StateEvent } from '../../src/client/index.js';
import { TestClient } from '../helpers/client.js';
import { nextState } from './client-helpers.js';
import { startRelay } from '../helpers/relay.js';
import { fixture, startApp, suiteApp } from '../helpers/server.js';
import { Server } from '../../src/server.js';
import type { server as clientApp } from '../fixtures/apps/client-app.js';

type App = typeof clientApp;
const clients: Client<App>[] = [];
const sockets: TestClient[] = [];

function connect(url: string, options: Partial<ClientOptions<App>> = {}): Client<App> {
  const client = createClient<App>({ url, WebSocket, headers: { Guest: {} }, reconnect: { baseDelayMs: 10, maxDelayMs: 50 }, ...options });
  clients.push(client);
  return client;
}

async function open(url: string, options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const socket = await TestClient.connect(url, { protocols: 'lexicons.v1', ...options });
  sockets.push(socket);
  return socket;
}

/** The call's outcome as a settled result, handled at once (a rejection is never unhandled). */
function settled<T>(promise: Promise<T>, onSettle: () => void = () => undefined): Promise<PromiseSettledResult<T>> {
  return promise.then(
    (value) => {
      onSettle();
      return { status: 'fulfilled', value } as const;
    },
    (reason: unknown) => {
      onSettle();
      return { status: 'rejected', reason } as const;
    },
  );
}

function codeOf(result: PromiseSettledResult<unknown>): string | undefined {
  return result.status === 'rejected' ? (result.reason as ClientError).code : undefined;
}

// After hooks run in the order they are declared: the clients close before the server stops.
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(sockets.map((s) => s.close()));
});
const srv = suiteApp(fixture('client-app'), { workers: 2 });

describe('client against the server: $connect admission', () => {
  it('selects lexicons.v1, admits on the $connect frame (header data never in the URL), then $connected with the limits', async () => {
    const socket = await open(srv.url);
    assert.equal(socket.ws.protocol, 'lexicons.v1');
    socket.send({ $connect: { headers: { Register: { name: 'ann', password: 'pw' } } } });
    assert.deepEqual(await socket.next(), [{ Register: { name: 'ann' } }], 'what the Headers sent comes first');
    const [item] = (await socket.next()) as [{ $connected: { id: string; limits: unknown } }];
    assert.match(item.$connected.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(item.$connected.limits, { maxCallsPerFrame: 100, maxMessageBytes: 1 << 20 });
    assert.deepEqual(await socket.call({ Echo: { ok: 1 }, $id: 1 }), [{ Echo: { ok: 1 }, $id: 1 }]);
    const client = connect(srv.url, { headers: { Login: { name: 'ann', password: 'pw' } } });
    const logins: unknown[] = [];
    client.on('Login', (payload) => logins.push(payload));
    const early = client.call('Echo', { n: 1 }); // made before $connected: waits
    assert.deepEqual(await early, { n: 1 });
    assert.deepEqual(logins, [{ name: 'ann' }]);
    assert.equal(client.connectionId?.length, 36);
  });

  it('merges header data of the URL with the frame\'s (names case-insensitive, the frame wins)', async () => {
    const both = await open(srv.url, { query: { Tag: { from: 'url' } } });
    both.send({ $connect: { headers: { tAG: { from: 'frame' }, Unknown: 1 } } });
    assert.deepEqual(await both.next(), [{ Tag: { from: 'frame' } }]);
    const urlOnly = await open(srv.url, { query: { Tag: { from: 'url' } } });
    urlOnly.send({ $connect: {} });
    assert.deepEqual(await urlOnly.next(), [{ Tag: { from: 'url' } }]);
    assert.ok('$connected' in ((await urlOnly.next()) as Array<Record<string, unknown>>)[0]!);
  });

  it('drops frames sent after $connect and before $connected (never executed)', async () => {
    const socket = await open(srv.url);
    socket.send({ $connect: { headers: { Slow: { ms: 300 } } } });
    socket.send({ Save: { text: 'early:1' }, $id: 1 });
    socket.send([{ Save: { text: 'early:2' }, $id: 2 }]);
    assert.ok('$connected' in ((await socket.next()) as Array<Record<string, unknown>>)[0]!);
    assert.deepEqual(await socket.call({ Notes: { prefix: 'early:' }, $id: 3 }), [{ Notes: [], $id: 3 }]);
  });

  for (const [what, frame] of [
    ['a call', '{"Echo": {}, "$id": 1}'],
    ['not JSON', '{"$connect"'],
    ['$connect not an object', '{"$connect": true}'],
  ] as const) {
    it(`refuses a first frame that is not $connect (${what}): PROTOCOL, close 1008`, async () => {
      const socket = await open(srv.url);
      socket.send(frame);
      assert.deepEqual(await socket.next(), [{ Errors: ['expected {"$connect": {...}} as the first frame'], code: 'PROTOCOL' }]);
      assert.deepEqual(await socket.waitClosed(), { code: 1008, reason: 'expected {"$connect": {...}} as the first frame' });
    });
  }

  it('refuses $connect headers that are not an object, and a binary first frame', async () => {
    const socket = await open(srv.url);
    socket.send({ $connect: { headers: 'Login' } });
    assert.deepEqual(await socket.next(), [{ Errors: ['$connect.headers must be an object of header data: {"Login": {...}}'], code: 'PROTOCOL' }]);
    assert.equal((await socket.waitClosed()).code, 1008);
    const binary = await open(srv.url);
    binary.ws.send(Buffer.from('{"$connect": {}}'), { binary: true });
    assert.deepEqual(await binary.next(), [{ Errors: ['expected {"$connect": {...}} as the first frame'], code: 'PROTOCOL' }]);
  });

  it('closes 1008 when no $connect comes within limits.connectTimeoutSeconds', async () => {
    const socket = await open(srv.url);
    const t0 = performance.now();
    assert.deepEqual(await socket.waitClosed(), { code: 1008, reason: 'no $connect within 0.5 s' });
    assert.ok(performance.now() - t0 >= 450, 'not before the limit');
    assert.deepEqual(socket.received, []);
  });

  it('refuses a connection without credentials (anonymous policy): AUTH_FAILED, close 1008', async () => {
    const socket = await open(srv.url);
    socket.send({ $connect: {} });
    const reason = 'Authentication failed: no credentials (send one of the headers Guest, Register, Login, Tag, Slow in the $connect frame)';
    assert.deepEqual(await socket.next(), [{ Errors: [reason], code: 'AUTH_FAILED' }]);
    assert.deepEqual(await socket.waitClosed(), { code: 1008, reason: reason.slice(0, 123) });
  });

  it('limits login attempts per address on $connect: RATE_LIMITED, close 1008; the client reports it and retries', async () => {
    await using strict = await startApp(fixture('client-strict-app'));
    for (let i = 0; i < 2; i++) {
      const ok = await open(strict.url);
      ok.send({ $connect: { headers: { Guest: {} } } });
      assert.ok('$connected' in ((await ok.next()) as Array<Record<string, unknown>>)[0]!);
    }
    const limited = await open(strict.url);
    limited.send({ $connect: { headers: { Guest: {} } } });
    const message = 'Too many login attempts: over 2 per minute from this address (retry in 30 s)';
    assert.deepEqual(await limited.next(), [{ Errors: [message], code: 'RATE_LIMITED' }]);
    assert.deepEqual(await limited.waitClosed(), { code: 1008, reason: message });
    const client = connect(strict.url, { reconnect: { baseDelayMs: 5_000, maxDelayMs: 5_000 } });
    const lost = await nextState(client, 'disconnected');
    assert.equal(lost.error?.code, WireCode.RATE_LIMITED);
    assert.equal(client.state, 'disconnected', 'not closed: it retries');
  });
});

describe('limits.connectTimeoutSeconds', () => {
  it('is checked when the Server is built, with an exact message', () => {
    for (const bad of [0, -1, 3_000_000, Number.NaN, '10']) {
      assert.throws(() => new Server({ limits: { connectTimeoutSeconds: bad as number } }), {
        message: `limits.connectTimeoutSeconds must be a number of seconds from 0.001 to 2147483, got ${JSON.stringify(bad)}`,
      });
    }
    assert.equal(new Server({ limits: { connectTimeoutSeconds: 2.5 } }).resolve().limits.connectTimeoutSeconds, 2.5);
    assert.equal(new Server().resolve().limits.connectTimeoutSeconds, 10);
  });
});

describe('client against the server: refusals and reconnects', () => {
  it('stops reconnecting on AUTH_FAILED and says so; waiting calls reject with it', async () => {
    const client = connect(srv.url, { headers: { Login: { name: 'ann', password: 'wrong' } } });
    const waiting = client.call('Echo', {});
    const closed = await nextState(client, 'closed');
    assert.deepEqual([closed.code, closed.reason], [1008, 'Authentication failed: Login rejected the credentials']);
    assert.ok(closed.error instanceof ClientError && closed.error.code === WireCode.AUTH_FAILED);
    await assert.rejects(waiting, (err: unknown) => (err as ClientError).code === WireCode.AUTH_FAILED);
    const refusals = () => srv.logs.filter((l) => l.status === 'HEADER-CHECK-FAILED' && String(l.data.reason).includes('Login rejected')).length;
    const seen = refusals();
    // With 10-50 ms backoff a second attempt would be refused within 500 ms.
    await assert.rejects(srv.waitForLog((l) => l.status === 'HEADER-CHECK-FAILED' && refusals() > seen, 500));
    assert.equal(client.state, 'closed');
  });

  it('evaluates a headers function at every connect (Register once, then Login)', async () => {
    let registered = false;
    const sent: string[] = [];
    const client = connect(srv.url, {
      headers: () => {
        const headers = registered ? { Login: { name: 'bob', password: 'pw' } } : { Register: { name: 'bob', password: 'pw' } };
        sent.push(Object.keys(headers)[0]!);
        registered = true;
        return Promise.resolve(headers);
      },
    });
    await nextState(client, 'open');
    const lost = nextState(client, 'disconnected');
    await assert.rejects(client.call('Kick'), (err: unknown) => (err as ClientError).code === ClientCode.CONNECTION_LOST);
    assert.deepEqual([(await lost).code, (await lost).reason], [4000, 'kicked']);
    await nextState(client, 'open');
    assert.deepEqual(sent, ['Register', 'Login']);
  });

  it('a burst across a connection the server closes: answered calls resolve, the rest reject CONNECTION_LOST, calls made meanwhile go on the next connection; none hangs or settles twice', async () => {
    const client = connect(srv.url);
    await nextState(client, 'open');
    const timeoutMs = 20_000;
    let settlements = 0;
    const count = <T>(p: Promise<T>) => settled(p, () => settlements++);
    const before = Array.from({ length: 500 }, (_, n) => count(client.call('Echo', { n }, { timeoutMs })));
    const kick = count(client.call('Kick', {}, { timeoutMs }));
    const afterKick = Array.from({ length: 1500 }, (_, n) => count(client.call('Echo', { n: 500 + n }, { timeoutMs })));
    const lost = await nextState(client, 'disconnected');
    assert.equal(lost.code, 4000);
    const waiting = Array.from({ length: 200 }, (_, n) => count(client.call('Echo', { n: 10_000 + n }, { timeoutMs })));
    const [early, kicked, late, meanwhile] = await Promise.all([Promise.all(before), Promise.all([kick]), Promise.all(afterKick), Promise.all(waiting)]);
    assert.equal(settlements, 2201);
    early.forEach((r, n) => assert.deepEqual(r, { status: 'fulfilled', value: { n } }));
    assert.equal(codeOf(kicked[0]!), ClientCode.CONNECTION_LOST);
    late.forEach((r) => assert.equal(codeOf(r), ClientCode.CONNECTION_LOST));
    meanwhile.forEach((r, n) => assert.deepEqual(r, { status: 'fulfilled', value: { n: 10_000 + n } }));
  });

  it('re-sends replayed calls in order after $connected, before waiting calls; a refused or aborted replay is not re-sent', async () => {
    const client = connect(srv.url);
    const a = client.call('Save', { text: 'replay:a' }, { replay: true });
    const b = client.call('Save', { text: 'replay:b' }, { replay: true });
    const bad = client.call('Join', { channel: 'Nowhere' }, { replay: true });
    const controller = new AbortController();
    const c = client.call('Save', { text: 'replay:c' }, { replay: true, signal: controller.signal });
    assert.deepEqual(await Promise.all([a, b, c]), [{ text: 'replay:a' }, { text: 'replay:b' }, { text: 'replay:c' }]);
    await assert.rejects(bad, (err: unknown) => (err as ClientError).code === WireCode.CHANNEL_NOT_FOUND);
    controller.abort();
    const lost = nextState(client, 'disconnected');
    await assert.rejects(client.call('Kick'));
    await lost;
    const waiting = client.call('Save', { text: 'replay:waiting' });
    // A call made by an `open` handler (e.g. fetching history) goes after the replays and the waiting calls.
    const fromHandler = new Promise((resolve) => client.onState((e) => e.state === 'open' && resolve(client.call('Save', { text: 'replay:handler' }))));
    await waiting;
    await fromHandler;
    assert.deepEqual(await client.call('Notes', { prefix: 'replay:' }), ['replay:a', 'replay:b', 'replay:c', 'replay:a', 'replay:b', 'replay:waiting', 'replay:handler']);
  });

  it('after a server restart: reconnects, replays its subscription, and calls made while it was down go out once it is back', async () => {
    await using first = await startApp(fixture('client-app'));
    await using relay = await startRelay(first.port); // one address across the restart (see relay.ts)
    const url = `ws://127.0.0.1:${relay.port}`;
    const reader = connect(url);
    const posts: unknown[] = [];
    reader.on('Post', (payload) => posts.push(payload));
    await reader.call('Join', { channel: 'Public' }, { replay: true });
    const writer = connect(url);
    await writer.call('Join', { channel: 'Other' }, { replay: true });
    let settlements = 0;
    const burst = Array.from({ length: 1000 }, (_, n) => settled(reader.call('Echo', { n }, { timeoutMs: 20_000 }), () => settlements++));
    const down = nextState(reader, 'disconnected');
    await first.stop();
    assert.equal((await down).code, 1001);
    const whileDown = reader.call('Echo', { n: -1 }, { timeoutMs: 20_000 });
    const reopened = nextState(reader, 'open');
    await using restarted = await startApp(fixture('client-app'), { data: first.data });
    relay.target = restarted.port;
    await reopened;
    assert.deepEqual(await whileDown, { n: -1 });
    const results = await Promise.all(burst);
    assert.equal(settlements, 1000);
    for (const [n, r] of results.entries()) {
      if (r.status === 'fulfilled') assert.deepEqual(r.value, { n });
      else assert.ok([ClientCode.CONNECTION_LOST, WireCode.SHUTTING_DOWN].includes(codeOf(r) as never), `call ${n}: ${codeOf(r)}`);
    }
    // The replayed Join put the reader back in Public on the new server.
    assert.deepEqual(await writer.call('Post', { channels: ['Public'], text: 'after restart' }), undefined);
    await reader.call('Echo', { marker: true });
    assert.deepEqual(posts, [{ text: 'after restart', from: null }]);
  });

  it('gives up a connection not admitted within connectTimeoutMs, and retries', async () => {
    const client = connect(srv.url, { headers: { Slow: { ms: 400 } }, connectTimeoutMs: 150 });
    const lost = await nextState(client, 'disconnected');
    assert.deepEqual([lost.code, lost.reason], [1006, 'no $connected within 150 ms']);
    await nextState(client, 'connecting', (e) => e.attempt === 1);
  });

  it('waits for connect() when autoConnect is false; calls made meanwhile go out after $connected', async () => {
    const client = connect(srv.url, { autoConnect: false });
    assert.equal(client.state, 'disconnected');
    const reply = client.call('Echo', { n: 1 });
    client.connect();
    assert.deepEqual(await reply, { n: 1 });
  });

  it('close() rejects unsettled calls with CLOSED and stops; an aborted call rejects with ABORTED', async () => {
    const client = connect(srv.url);
    await nextState(client, 'open');
    const controller = new AbortController();
    const aborted = client.call('Later', { ms: 2000 }, { signal: controller.signal });
    controller.abort();
    await assert.rejects(aborted, (err: unknown) => (err as ClientError).code === ClientCode.ABORTED);
    const pending = client.call('Later', { ms: 2000 });
    const closed = nextState(client, 'closed');
    client.close();
    await assert.rejects(pending, (err: unknown) => (err as ClientError).code === ClientCode.CLOSED);
    assert.deepEqual([(await closed).code, (await closed).error], [1000, undefined]);
    await assert.rejects(client.call('Ack'), (err: unknown) => (err as ClientError).code === ClientCode.CLOSED);
  });
});
