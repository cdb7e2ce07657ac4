/**
 * Session resume and exactly-once calls against the real server (channels-app, 2 workers, behind
 * a trusted proxy so a connection can claim another client address): a resume token restores
 * auth, meta and channels without running the Headers (with recovery from positions); each
 * `$connected` hands out a fresh token; a used token, or one presented from another address, is
 * refused (the Headers run instead); a keyed call replayed after its connection dropped gets the
 * first run's outcome (also while that run is still going), and its row is written once.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fixture, startApp, suiteApp } from '../helpers/server.js';
import { assertRun, offsets, v1, type Item, type V1Socket } from './raw.js';

const open: V1Socket[] = [];
let nextId = 1;

async function client(connect: Parameters<typeof v1>[1], headers: Record<string, string> = {}): Promise<V1Socket> {
  const socket = await v1(srv.url, connect, { headers });
  open.push(socket);
  return socket;
}

/** Drops the TCP connection without a close frame (the server sees 1006). */
async function drop(socket: V1Socket): Promise<void> {
  socket.socket.ws.terminate();
  await socket.socket.closed;
}

// Sockets close first (after hooks run in declaration order), then the server stops.
after(() => Promise.all(open.map((s) => s.close())));
const srv = suiteApp(fixture('channels-app'), { workers: 2, overrides: { trustProxy: ['127.0.0.1'] } });

describe('session resume', () => {
  it('restores auth, meta and channels without the Headers; recovers from positions; a fresh token each time', async () => {
    const ann = await client({ headers: { Guest: { name: 'ann' } } });
    assert.match(ann.connected.resume, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
    assert.equal(ann.connected.resumed, undefined, 'no resume asked');
    assert.equal(ann.items.filter((i) => '$subscribed' in i).length, 0, 'no channel yet');
    await ann.call('Join', { channel: 'Public' }, nextId++);
    await ann.call('Join', { channel: 'Lobby' }, nextId++);
    await ann.call('SetMeta', { name: 'Ann A.' }, nextId++);
    const mine = await ann.call('Post', { channel: 'Public', text: 'resume-1' }, nextId++);
    const subscribed = ann.items.find((i) => i.$subscribed?.channel === 'Public')!.$subscribed as Item;
    await drop(ann);
    const bob = await client({ headers: { Guest: { name: 'bob' } } });
    await bob.call('Join', { channel: 'Public' }, nextId++);
    await bob.call('Post', { channel: 'Public', text: 'resume-2' }, nextId++);
    const back = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'mallory' } }, positions: { Public: { epoch: subscribed.epoch as string, offset: mine.$off.Public as number } } });
    assert.equal(back.connected.resumed, true);
    assert.notEqual(back.connected.resume, ann.connected.resume, 'a fresh token');
    const s = (await back.until((i) => i.$subscribed?.channel === 'Public')).$subscribed as Item;
    assert.deepEqual([s.recovered, s.recovering], [true, true]);
    assert.equal((await back.until((i) => i.Post?.text === 'resume-2')).$off.Public, (mine.$off.Public as number) + 1);
    const me = await back.call('Whoami', {}, nextId++);
    assert.deepEqual(me.Whoami, { auth: 'ann', meta: { name: 'Ann A.' }, channels: ['Lobby', 'Public'] }, 'the Headers did not run (auth is not mallory)');
    await bob.call('Post', { channel: 'Public', text: 'resume-3' }, nextId++);
    await back.until((i) => i.Post?.text === 'resume-3');
    assertRun(offsets(back.items, 'Public'), (mine.$off.Public as number) + 1, (mine.$off.Public as number) + 2);
  });

  it('a used token is refused: resumed false, the Headers run on the headers sent', async () => {
    const ann = await client({ headers: { Guest: { name: 'ann' } } });
    await drop(ann);
    const first = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'ann' } } });
    assert.equal(first.connected.resumed, true);
    const again = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'eve' } } });
    assert.equal(again.connected.resumed, false);
    assert.equal((await again.call('Whoami', {}, nextId++)).Whoami.auth, 'eve');
  });

  it('a token presented from another client address is refused (and used up)', async () => {
    const ann = await client({ headers: { Guest: { name: 'ann' } } });
    await ann.call('Join', { channel: 'Public' }, nextId++);
    await drop(ann);
    const thief = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'eve' } } }, { 'x-forwarded-for': '10.9.9.9' });
    assert.equal(thief.connected.resumed, false);
    const me = await thief.call('Whoami', {}, nextId++);
    assert.deepEqual(me.Whoami, { auth: 'eve', meta: { name: 'eve' }, channels: [] });
    const owner = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'ann' } } });
    assert.equal(owner.connected.resumed, false, 'the stolen attempt used the token up');
  });
});

describe('exactly-once calls ($key)', () => {
  it('a keyed call whose reply was lost: the replay (new $id) gets the first outcome; one row', async () => {
    const ann = await client({ headers: { Guest: { name: 'ann' } } });
    const first = await ann.call('Post', { channel: 'Lobby', text: 'once-a' }, nextId++, { $key: 'key-a' });
    await drop(ann);
    const back = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'ann' } } });
    const id = nextId++;
    const replay = await back.call('Post', { channel: 'Lobby', text: 'once-a' }, id, { $key: 'key-a' });
    assert.deepEqual(replay, { ...first, $id: id }, 'the stored outcome, re-tagged');
    assert.equal((await back.call('Count', { prefix: 'once-a' }, nextId++)).Count, 1);
  });

  it('a keyed call still running when its connection dropped: the replay waits for it; one row', async () => {
    const ann = await client({ headers: { Guest: { name: 'ann' } } });
    await ann.call('Join', { channel: 'Lobby' }, nextId++);
    ann.socket.send({ SlowPost: { channel: 'Lobby', text: 'once-b', ms: 400 }, $id: nextId++, $key: 'key-b' });
    // The server parses frames in stream order: once the pong is back, SlowPost was queued.
    await new Promise<void>((resolve) => {
      ann.socket.ws.once('pong', () => resolve());
      ann.socket.ws.ping();
    });
    await drop(ann);
    const back = await client({ resume: ann.connected.resume, headers: { Guest: { name: 'ann' } } });
    const id = nextId++;
    const replay = await back.call('SlowPost', { channel: 'Lobby', text: 'once-b', ms: 400 }, id, { $key: 'key-b' });
    assert.equal(replay.SlowPost.text, 'once-b');
    assert.equal(replay.$id, id);
    assert.equal((await back.call('Count', { prefix: 'once-b' }, nextId++)).Count, 1);
    assert.equal(back.items.filter((i) => i.$id === id).length, 1, 'the replay is answered once');
  });

  it('keys are per session: another session with the same key runs its own call', async () => {
    const a = await client({ headers: { Guest: { name: 'a' } } });
    const b = await client({ headers: { Guest: { name: 'b' } } });
    await a.call('Post', { channel: 'Lobby', text: 'own-key' }, nextId++, { $key: 'same' });
    await b.call('Post', { channel: 'Lobby', text: 'own-key' }, nextId++, { $key: 'same' });
    assert.equal((await b.call('Count', { prefix: 'own-key' }, nextId++)).Count, 2);
  });
});

describe('resume grace period', () => {
  it('a token presented after resumeGraceSeconds (1 s) is refused: the Headers run', async () => {
    await using short = await startApp(fixture('channels-short-app'));
    const ann = await v1(short.url, { headers: { Guest: { name: 'ann' } } });
    await ann.call('Join', { channel: 'Lobby' }, nextId++);
    const closedAt = Date.now();
    await drop(ann);
    // The session's end is what a late resume finds: wait for its presence leave (after the grace period).
    const watcher = await v1(short.url, { headers: { Guest: { name: 'watcher' } } });
    await watcher.call('Join', { channel: 'Lobby' }, nextId++);
    await watcher.until((i) => (i.$presence?.leave ?? []).length > 0, 10_000);
    assert.ok(Date.now() - closedAt >= 900, 'not before the grace period');
    const late = await v1(short.url, { resume: ann.connected.resume, headers: { Guest: { name: 'late' } } });
    assert.equal(late.connected.resumed, false);
    assert.deepEqual((await late.call('Whoami', {}, nextId++)).Whoami, { auth: 'late', meta: { name: 'late' }, channels: [] });
    await Promise.all([watcher.close(), late.close()]);
  });
});
