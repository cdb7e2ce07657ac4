/**
 * The wire protocol against a real server: calls, lists of calls, responses to channels (each
 * subscriber once, only its items), direct replies, and every error case.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteApp } from '../helpers/server.js';

describe('wire protocol', { timeout: 60_000 }, () => {
  const srv = suiteApp(fixture('protocol-app'), { workers: 2 });

  it('answers a single call', async () => {
    await using a = await TestClient.connect(srv.url);
    assert.deepEqual(await a.call({ Echo: { x: 1 } }), [{ Echo: { x: 1 } }]);
  });

  it('runs the calls of a list frame in order', async () => {
    await using a = await TestClient.connect(srv.url);
    a.send([{ AddNote: { text: 'one' } }, { AddNote: { text: 'two' } }, { ListNotes: {} }]);
    assert.deepEqual(await a.next(), [{ AddNote: { text: 'one' } }]);
    assert.deepEqual(await a.next(), [{ AddNote: { text: 'two' } }]);
    assert.deepEqual(await a.next(), [{ ListNotes: ['one', 'two'] }]);
  });

  it('keeps the order of calls sent by one connection across frames', async () => {
    await using a = await TestClient.connect(srv.url);
    // The first call is slow (async); the next ones must still run after it.
    a.send({ Later: { ms: 50, tag: 'first' } });
    a.send({ Later: { ms: 0, tag: 'second' } });
    a.send({ Echo: { tag: 'third' } });
    assert.deepEqual(await a.next(), [{ Later: { tag: 'first' } }]);
    assert.deepEqual(await a.next(), [{ Later: { tag: 'second' } }]);
    assert.deepEqual(await a.next(), [{ Echo: { tag: 'third' } }]);
  });

  it('broadcasts a response to every subscriber of its channel, and only to them', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    await using c = await TestClient.connect(srv.url);
    assert.deepEqual(await a.call({ Join: { channel: 'Public' } }), [{ Join: { channel: 'Public' } }]);
    assert.deepEqual(await b.call({ Join: { channel: 'Public' } }), [{ Join: { channel: 'Public' } }]);
    const id = (await whoami(a)).id;
    a.send({ Say: { channels: ['Public'], text: 'hello' } });
    const expected = [{ Say: { text: 'hello', from: id } }];
    assert.deepEqual(await a.next(), expected);
    assert.deepEqual(await b.next(), expected);
    // c is in no channel: its next frame is the reply to its own later call.
    assert.deepEqual(await c.call({ Echo: { barrier: true } }), [{ Echo: { barrier: true } }]);
  });

  it('sends nothing when a signal returns no channels (not even to the caller)', async () => {
    await using a = await TestClient.connect(srv.url);
    await a.call({ Join: { channel: 'Public' } });
    a.send({ Quiet: {} });
    assert.deepEqual(await a.call({ Echo: { after: 'quiet' } }), [{ Echo: { after: 'quiet' } }]);
  });

  it('sends a multi-channel response once to a client in two of the channels', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    await a.call({ Join: { channel: 'Public' } });
    await a.call({ Join: { channel: 'Other' } });
    await b.call({ Join: { channel: 'Other' } });
    a.send({ Say: { channels: ['Public', 'Other'], text: 'both' } });
    const first = await a.next();
    assert.deepEqual((first as Array<Record<string, { text: string }>>)[0]!.Say!.text, 'both');
    assert.deepEqual(await b.next(), first);
    assert.deepEqual(await a.call({ Echo: { n: 1 } }), [{ Echo: { n: 1 } }], 'a got the response twice');
  });

  it('gives each subscriber only the items addressed to its channels', async () => {
    await using a = await TestClient.connect(srv.url);
    await using p = await TestClient.connect(srv.url);
    await using o = await TestClient.connect(srv.url);
    await p.call({ Join: { channel: 'Public' } });
    await o.call({ Join: { channel: 'Other' } });
    const id = (await whoami(a)).id;
    a.send([{ Say: { channels: ['Public'], text: 'to public' } }, { Say: { channels: ['Other'], text: 'to other' } }]);
    assert.deepEqual(await p.next(), [{ Say: { text: 'to public', from: id } }]);
    assert.deepEqual(await o.next(), [{ Say: { text: 'to other', from: id } }]);
    assert.deepEqual(await p.call({ Echo: {} }), [{ Echo: {} }]);
    assert.deepEqual(await o.call({ Echo: {} }), [{ Echo: {} }]);
  });

  it('packs consecutive items of one frame for the same channel into one list', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    await b.call({ Join: { channel: 'Public' } });
    a.send([{ Say: { channels: ['Public'], text: '1' } }, { Say: { channels: ['Public'], text: '2' } }]);
    const frame = (await b.next()) as Array<{ Say: { text: string } }>;
    assert.deepEqual(frame.map((i) => i.Say.text), ['1', '2']);
  });

  it('leaves channels on unsubscribe', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    await b.call({ Join: { channel: 'Public' } });
    await b.call({ Leave: { channel: 'Public' } });
    a.send({ Say: { channels: ['Public'], text: 'gone' } });
    await a.call({ Echo: {} });
    assert.deepEqual(await b.call({ Echo: { b: 1 } }), [{ Echo: { b: 1 } }]);
  });

  describe('errors go to the caller only', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['unknown signal', { Nope: {} }, /^No signal \[Nope\]$/],
      ['malformed JSON', '{"Echo": ', /^Malformed JSON: /],
      ['a frame that is not an object', '42', /^Frame must be a JSON object/],
      ['a string frame', '"Echo"', /^Frame must be a JSON object/],
      ['an empty list', '[]', /^Empty call list/],
      ['a list item that is not an object', '[1]', /^Call 1 must be an object/],
      ['arguments that are not an object', { Echo: [1, 2] }, /^Arguments of \[Echo\] must be an object$/],
      ['a reserved argument name', { Echo: { db: 1 } }, /^Argument name db is reserved/],
      ['an argument of the wrong type', { Typed: { n: 'one', s: 'x' } }, /^\[Typed\] argument n: expected int/],
      ['a missing argument', { Typed: { s: 'x' } }, /^\[Typed\] argument n: is required$/],
      ['a signal that throws (message only)', { Fail: { message: 'bad thing' } }, /^bad thing$/],
      ['subscribing to an unknown channel', { Join: { channel: 'Nowhere' } }, /^Channel \[Nowhere\] does not exist/],
    ];
    for (const [name, frame, pattern] of cases) {
      it(name, async () => {
        await using a = await TestClient.connect(srv.url);
        await using watcher = await TestClient.connect(srv.url);
        await watcher.call({ Join: { channel: 'Public' } });
        const reply = (await a.call(frame)) as Array<{ Errors: string[] }>;
        assert.equal(reply.length, 1);
        assert.equal(reply[0]!.Errors.length, 1);
        assert.match(reply[0]!.Errors[0]!, pattern);
        assert.deepEqual(await watcher.call({ Echo: {} }), [{ Echo: {} }], 'the error leaked to another client');
      });
    }

    it('reports binary frames', async () => {
      await using a = await TestClient.connect(srv.url);
      a.ws.send(Buffer.from('{"Echo":{}}'), { binary: true });
      assert.deepEqual(await a.next(), [{ Errors: ['Binary frames are not supported: send JSON text frames'] }]);
    });

    it('returns the correlation id and the code with the errors of that call', async () => {
      await using a = await TestClient.connect(srv.url);
      a.send([{ Nope: {}, $id: 7 }, { Echo: { ok: true } }, { Fail: {}, $id: 'x' }]);
      assert.deepEqual(await a.next(), [{ Errors: ['No signal [Nope]'], code: 'UNKNOWN_SIGNAL', $id: 7 }]);
      assert.deepEqual(await a.next(), [{ Echo: { ok: true } }]);
      assert.deepEqual(await a.next(), [{ Errors: ['boom'], code: 'EXECUTION', $id: 'x' }]);
    });

    it('rolls back the writes of a call that throws, keeping the others of the list', async () => {
      await using a = await TestClient.connect(srv.url);
      a.send([{ AddNote: { text: 'kept' } }, { WriteThenFail: { text: 'dropped' } }, { ListNotes: {} }]);
      assert.deepEqual(await a.next(), [{ AddNote: { text: 'kept' } }]);
      assert.deepEqual(await a.next(), [{ Errors: ['failed after writing'] }]);
      assert.deepEqual(await a.next(), [{ ListNotes: ['kept'] }]);
    });

    it('logs the stack of a signal that throws', async () => {
      await using a = await TestClient.connect(srv.url);
      await a.call({ Fail: { message: 'for the log' } });
      const entry = await srv.waitForLog((r) => r.status === 'SIGNAL-ERROR' && r.data.message === 'for the log');
      assert.match(String(entry.data.stack), /protocol-app/);
    });
  });

  it('gives each connection a unique id, and keeps auth set by a signal', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    const [wa, wb] = [await whoami(a), await whoami(b)];
    assert.notEqual(wa.id, wb.id);
    assert.match(wa.id, /^[0-9a-f-]{36}$/);
    a.send({ SetAuth: { value: 'user-1' } });
    assert.equal((await whoami(a)).auth, 'user-1');
  });

  it('broadcasts with sv.broadcast as given, and knows run-time channels', async () => {
    await using a = await TestClient.connect(srv.url);
    await using b = await TestClient.connect(srv.url);
    assert.deepEqual(await a.call({ MakeRoom: { name: 'room-1' } }), [{ MakeRoom: { name: 'room-1' } }]);
    assert.deepEqual(await b.call({ Join: { channel: 'room-1' } }), [{ Join: { channel: 'room-1' } }]);
    a.send({ Shout: { channels: ['room-1'], text: 'hey' } });
    assert.deepEqual(await b.next(), { Shout: 'hey' });
    const info = (await a.call({ Info: {} })) as [{ Info: { connections: number; channels: Record<string, number> } }];
    assert.equal(info[0].Info.channels['room-1'], 1);
    assert.ok(info[0].Info.connections >= 2);
    assert.deepEqual(await a.call({ DropRoom: { name: 'room-1' } }), [{ DropRoom: { name: 'room-1' } }]);
    const who = await whoami(b);
    assert.deepEqual(who.channels, []);
  });

  it('closes a connection from a signal after sending', async () => {
    await using a = await TestClient.connect(srv.url);
    a.send({ Bye: {} });
    assert.deepEqual(await a.next(), [{ Bye: {} }]);
    assert.deepEqual(await a.waitClosed(), { code: 4000, reason: 'bye' });
  });
});

async function whoami(c: TestClient): Promise<{ id: string; auth: unknown; channels: string[] }> {
  const reply = (await c.call({ Whoami: {} })) as [{ Whoami: { id: string; auth: unknown; channels: string[] } }];
  return reply[0].Whoami;
}
