/**
 * The client against the REAL server (test/fixtures/apps/client-app.ts on loopback): calls and
 * their outcomes. Correlation of 10,000 concurrent calls from one client, the terminal frame of a
 * call with `$id` (its tagged items together, a plain payload before it, `$ok`), the caller's copy
 * of its response (once, tagged, on both fan-out paths), timeouts, and one error code per
 * situation, table-driven over WireCode.
 */
import assert from 'node:assert/strict';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ClientCode, ClientError, createClient, WireCode, type Client, type ClientOptions } from '../../src/client/index.js';
import { SignalError } from '../../src/index.js';
import { TestClient } from '../helpers/client.js';
import { echoBurst } from './client-helpers.js';
import { fixture, startApp, suiteApp, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import type { server as clientApp } from '../fixtures/apps/client-app.js';

// Read by the fixture's workers when they load it (NOT_SAVED while this file exists).
const faultDir = await tempDir();
const faultFile = join(faultDir.path, 'enospc');
process.env.CLIENT_APP_FAULT_FILE = faultFile;

type App = typeof clientApp;
const clients: Client<App>[] = [];
const sockets: TestClient[] = [];

function connect(url: string, options: Partial<ClientOptions<App>> = {}): Client<App> {
  const client = createClient<App>({ url, WebSocket, headers: { Guest: {} }, reconnect: { baseDelayMs: 10, maxDelayMs: 50 }, ...options });
  clients.push(client);
  return client;
}

/** A raw lexicons.v1 socket, admitted as a guest. */
async function rawV1(url: string): Promise<TestClient> {
  const socket = await TestClient.connect(url, { protocols: 'lexicons.v1' });
  sockets.push(socket);
  socket.send({ $connect: { headers: { Guest: {} } } });
  const [connected] = (await socket.next()) as [{ $connected: { id: string } }];
  assert.equal(typeof connected.$connected.id, 'string');
  return socket;
}

/** The first error item of the next frames that carries `$id` (bounded). */
async function errorItemFor(socket: TestClient, id: number): Promise<Record<string, unknown>> {
  for (;;) {
    const frame = (await socket.next(10_000)) as Array<Record<string, unknown>>;
    const item = frame.find((i) => i.$id === id);
    if (item) return item;
  }
}

async function metric(srv: TestServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name}`);
  return Number(line.split(' ')[1]);
}

function rejectsWith(promise: Promise<unknown>): Promise<ClientError> {
  return promise.then(
    (value) => assert.fail(`resolved with ${JSON.stringify(value)}`),
    (err: unknown) => {
      assert.ok(err instanceof ClientError, String(err));
      return err;
    },
  );
}

// After hooks run in the order they are declared: the clients close before the server stops.
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(sockets.map((s) => s.close()));
  await faultDir[Symbol.asyncDispose]();
});
const srv = suiteApp(fixture('client-app'), { workers: 2 });

describe('client against the server: calls', () => {
  it('correlates 10,000 concurrent calls from one client: each settles once with its own reply, in list frames', async () => {
    const client = connect(srv.url);
    let delivered = 0;
    client.on('Echo', () => delivered++);
    const framesBefore = await metric(srv, 'lexicons_frames_total');
    const N = 10_000;
    await echoBurst(client, N);
    assert.equal(delivered, N, 'each reply item reached on() once');
    const frames = (await metric(srv, 'lexicons_frames_total')) - framesBefore;
    assert.ok(frames <= N / 100 + 2, `${N} calls in ${frames} frames (at most 100 calls each, plus $connect)`);
  });

  it('answers a call with $id in one terminal frame: its tagged items together, a plain payload before it, $ok for nothing', async () => {
    const socket = await rawV1(srv.url);
    socket.send([
      { Echo: { a: 1 }, $id: 1 },
      { Ack: {}, $id: 2 },
      { Two: {}, $id: 3 },
    ]);
    assert.deepEqual(await socket.next(), [{ Echo: { a: 1 }, $id: 1 }, { $ok: true, $id: 2 }]);
    assert.equal(await socket.next(), 'plain');
    assert.deepEqual(await socket.next(), [{ First: 1, $id: 3 }, { Two: 2, $id: 3 }, 3]);
    // Calls without $id: as before (no tag, no $ok).
    socket.send([{ Echo: { b: 2 } }, { Ack: {} }, { Echo: { c: 3 } }]);
    assert.deepEqual(await socket.next(), [{ Echo: { b: 2 } }]);
    assert.deepEqual(await socket.next(), [{ Echo: { c: 3 } }]);
    const client = connect(srv.url);
    const firsts: unknown[] = [];
    client.on('First', (payload) => firsts.push(payload));
    assert.equal(await client.call('Two'), 2, 'resolves with the item named like the Signal');
    assert.equal(await client.call('Ack'), undefined);
    assert.deepEqual(firsts, [1]);
  });

  for (const channels of [['Public'], ['Public', 'Other']]) {
    it(`gives the caller its response once, tagged, and the other subscribers theirs (channels ${channels.join(', ')})`, async () => {
      const poster = connect(srv.url);
      const other = await rawV1(srv.url);
      await using plain = await TestClient.connect(srv.url, { headers: { Guest: '{}' } });
      for (const channel of channels) {
        await poster.call('Join', { channel });
        other.send({ Join: { channel }, $id: channel });
        assert.deepEqual(await other.next(), [{ Join: { channel }, $id: channel }]);
        assert.deepEqual(await plain.call({ Join: { channel } }), [{ Join: { channel } }]);
      }
      const own: unknown[] = [];
      poster.on('Post', (payload) => own.push(payload));
      const reply = await poster.call('Post', { channels, text: 'hi' });
      assert.deepEqual(reply, { text: 'hi', from: null });
      assert.deepEqual(await other.next(), [{ Post: { text: 'hi', from: null } }], 'untagged for the others');
      assert.deepEqual(await plain.next(), [{ Post: { text: 'hi', from: null } }]);
      await poster.call('Echo', { marker: true }); // anything sent to the poster before it has arrived
      assert.deepEqual(own, [{ text: 'hi', from: null }], 'the caller got its copy once');
    });
  }

  it('delivers pushes by name to on() handlers; a removed handler gets no more', async () => {
    const reader = connect(srv.url);
    const poster = connect(srv.url);
    await reader.call('Join', { channel: 'Other' });
    const got: unknown[] = [];
    const off = reader.on('Post', (payload) => got.push(payload));
    const next = () => new Promise((resolve) => { const stop = reader.on('Post', (p) => { stop(); resolve(p); }); });
    let arrived = next();
    await poster.call('Post', { channels: ['Other'], text: 'one' });
    await arrived;
    off();
    arrived = next();
    await poster.call('Post', { channels: ['Other'], text: 'two' });
    assert.deepEqual(await arrived, { text: 'two', from: null });
    assert.deepEqual(got, [{ text: 'one', from: null }]);
  });

  it('times out a call without an outcome; its late reply reaches on() only', async () => {
    const client = connect(srv.url);
    const late = new Promise((resolve) => client.on('Later', resolve));
    const t0 = performance.now();
    const err = await rejectsWith(client.call('Later', { ms: 600, tag: 'late' }, { timeoutMs: 100 }));
    const elapsed = performance.now() - t0;
    assert.equal(err.code, ClientCode.CALL_TIMEOUT);
    assert.ok(elapsed >= 99 && elapsed < 600, `timed out after ${elapsed} ms`);
    assert.deepEqual(await late, { tag: 'late' });
  });

  it('rejects with the code a Signal threw (SignalError); a bad code is refused when the error is made', async () => {
    const err = await rejectsWith(connect(srv.url).call('Deny'));
    assert.deepEqual([err.code, err.message], ['NOT_ALLOWED', 'only admins']);
    for (const bad of ['not_allowed', '1ABC', '', 'A'.repeat(65)]) {
      assert.throws(() => new SignalError(bad, 'x'), { name: 'TypeError', message: `SignalError: code must match /^[A-Z][A-Z0-9_]{0,63}$/, got ${JSON.stringify(bad)}` });
    }
  });
});

describe('frames that never run still answer each call with $id', () => {
  it('too many calls in a frame: one PROTOCOL error item per $id', async () => {
    const socket = await rawV1(srv.url);
    socket.send(Array.from({ length: 101 }, (_, i) => ({ Echo: {}, $id: i })));
    const frame = (await socket.next()) as Array<Record<string, unknown>>;
    assert.equal(frame.length, 101);
    frame.forEach((item, i) => assert.deepEqual(item, { Errors: ['Too many calls in one frame: 101 (limit 100)'], code: 'PROTOCOL', $id: i }));
  });

  it('refused unparsed (rate limit): an item per $id up to 64 KiB, one untagged item for a larger frame', async () => {
    await using strict = await startApp(fixture('client-strict-app'));
    const socket = await rawV1(strict.url);
    for (let i = 0; i < 10; i++) socket.send({ Ack: {}, $id: `ok${i}` }); // empties the bucket (5 frames per second)
    socket.send([{ Echo: { nested: { $id: 'not a call id' } }, $id: 'a' }, { Echo: { s: 'say "$id": 1' }, $id: 'b' }, { Ack: null, $id: 7 }]);
    socket.send([{ Echo: { pad: 'x'.repeat(70 * 1024) }, $id: 'big' }]);
    const refusals: unknown[] = [];
    while (refusals.length < 2) {
      const frame = (await socket.next()) as Array<Record<string, unknown>>;
      if (frame.every((item) => item.code === 'RATE_LIMITED' && !String(item.$id).startsWith('ok'))) refusals.push(frame);
    }
    const message = 'Rate limit exceeded (5 messages per second)';
    assert.deepEqual(refusals, [
      [
        { Errors: [message], code: 'RATE_LIMITED', $id: 'a' },
        { Errors: [message], code: 'RATE_LIMITED', $id: 'b' },
        { Errors: [message], code: 'RATE_LIMITED', $id: 7 },
      ],
      [{ Errors: [message], code: 'RATE_LIMITED' }],
    ]);
  });
});

describe('client against the server: one error code per situation', () => {
  /** Every WireCode, and how to provoke it: the error a client (or a raw v1 socket) gets. */
  const situations: Record<WireCode, { message: string | RegExp; provoke: () => Promise<{ code: unknown; message: string }> }> = {
    PROTOCOL: {
      message: /^Malformed JSON: /,
      async provoke() {
        const socket = await rawV1(srv.url);
        socket.send('{"Echo": {}, "$id": 41');
        const item = await errorItemFor(socket, 41);
        return { code: item.code, message: (item.Errors as string[])[0]! };
      },
    },
    UNKNOWN_SIGNAL: { message: 'No signal [Nope]', provoke: () => rejectsWith((connect(srv.url) as Client).call('Nope')) },
    BAD_ARGUMENTS: { message: '[Typed] argument n: expected int (a safe integer), got string "x"', provoke: () => rejectsWith(connect(srv.url).call('Typed', { n: 'x' as never })) },
    CHANNEL_NOT_FOUND: {
      message: 'Channel [Nowhere] does not exist (declare it, or create it with sv.createChannel)',
      provoke: () => rejectsWith(connect(srv.url).call('Join', { channel: 'Nowhere' })),
    },
    CHANNEL_FORBIDDEN: { message: 'Not allowed to join [Vault]', provoke: () => rejectsWith(connect(srv.url).call('Join', { channel: 'Vault' })) },
    EXECUTION: { message: 'boom', provoke: () => rejectsWith(connect(srv.url).call('Fail', {})) },
    TIMEOUT: { message: 'Execution timed out after 1500 ms (limits.executionTimeoutMs)', provoke: () => rejectsWith(connect(srv.url).call('Spin')) },
    WORKER_FAILED: { message: /^Internal error: worker failed/, provoke: () => rejectsWith(connect(srv.url).call('Crash')) },
    NOT_SAVED: {
      message: /^Not saved: .*ENOSPC/,
      async provoke() {
        const client = connect(srv.url);
        await client.call('Ack'); // admitted before the log refuses writes
        await writeFile(faultFile, '');
        try {
          return await rejectsWith(client.call('Save', { text: 'lost' }));
        } finally {
          await rm(faultFile);
        }
      },
    },
    RATE_LIMITED: {
      message: 'Rate limit exceeded (5 messages per second)',
      async provoke() {
        await using strict = await startApp(fixture('client-strict-app'));
        const client = connect(strict.url);
        await client.call('Ack');
        // One frame per macrotask: over 5 per second.
        const calls: Array<Promise<ClientError | undefined>> = [];
        for (let i = 0; i < 8; i++) {
          calls.push(client.call('Echo', { i }).then(() => undefined, (err: ClientError) => err));
          await new Promise((resolve) => setImmediate(resolve));
        }
        const refused = (await Promise.all(calls)).find((err) => err !== undefined);
        assert.ok(refused, 'a call was refused');
        return refused;
      },
    },
    QUEUE_FULL: {
      message: 'Too many pending messages (1024); wait for replies',
      async provoke() {
        const socket = await rawV1(srv.url);
        socket.send({ Later: { ms: 500 }, $id: 0 });
        for (let i = 1; i <= 1200; i++) socket.send({ Echo: {}, $id: i });
        for (;;) {
          const frame = (await socket.next(10_000)) as Array<Record<string, unknown>>;
          const item = frame.find((i) => i.code === 'QUEUE_FULL');
          if (item) {
            assert.equal(typeof item.$id, 'number', 'the refused frame\'s call got its error');
            return { code: item.code, message: (item.Errors as string[])[0]! };
          }
        }
      },
    },
    SHUTTING_DOWN: {
      message: 'Server is shutting down',
      async provoke() {
        await using doomed = await startApp(fixture('client-app'), { workers: 2 });
        const socket = await rawV1(doomed.url);
        socket.send({ Later: { ms: 1000 }, $id: 1 }); // keeps the shutdown waiting, the connection open
        // Once another connection's call came back, the server has taken that frame.
        assert.equal(await connect(doomed.url).call('Ack'), undefined);
        const stopped = doomed.stop();
        socket.send({ Echo: {}, $id: 2 });
        try {
          const item = await errorItemFor(socket, 2);
          return { code: item.code, message: (item.Errors as string[])[0]! };
        } finally {
          await stopped;
        }
      },
    },
    UNKNOWN_LIVE_QUERY: {
      message: 'No live query [Nope]',
      async provoke() {
        const client = connect(srv.url);
        return rejectsWith((client as Client).live('Nope').ready);
      },
    },
    LIVE_LIMIT: {
      message: 'a connection holds at most 64 live queries',
      async provoke() {
        const client = connect(srv.url);
        const views = Array.from({ length: 65 }, () => client.live('AllNotes'));
        await Promise.all(views.slice(0, 64).map((v) => v.ready));
        return rejectsWith(views[64]!.ready);
      },
    },
    LIVE_WRITE: {
      message: 'live query [WritingNotes] wrote: a live query only reads (write in a Signal)',
      async provoke() {
        const client = connect(srv.url);
        const error = await rejectsWith(client.live('WritingNotes').ready);
        const notes = client.live('AllNotes');
        await notes.ready;
        assert.ok(!notes.rows.some((n) => n.text === 'from a live query'), 'the write was undone');
        return error;
      },
    },
    AUTH_FAILED: {
      message: 'Authentication failed: Login rejected the credentials',
      async provoke() {
        const client = connect(srv.url, { headers: { Login: { name: 'nobody', password: 'x' } } });
        return rejectsWith(client.call('Ack'));
      },
    },
  };

  for (const [code, situation] of Object.entries(situations)) {
    it(code, async () => {
      const error = await situation.provoke();
      assert.equal(error.code, code);
      if (typeof situation.message === 'string') assert.equal(error.message, situation.message);
      else assert.match(error.message, situation.message);
    });
  }

  it('covers every WireCode', () => {
    assert.deepEqual(Object.keys(situations).sort(), Object.keys(WireCode).sort());
  });
});
