/**
 * History channels against the real server (test/fixtures/apps/channels-app.ts, 2 workers), with
 * raw lexicons.v1 sockets: `$subscribed` on every join, `$off` on every item in offset order
 * (concurrent publishers on two workers), recovery from `$connect` positions (complete, past the
 * cap, after trimming, after an epoch change), `$recover` for a gap, per-channel authorization
 * (a declared channel and a `room:*` family), and a v0 socket seeing items as before plus `$off`.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteApp } from '../helpers/server.js';
import { assertRun, guest, offsets, type ConnectFrame, type Item, type V1Socket } from './raw.js';

const open: V1Socket[] = [];
let nextId = 1;

const client = (name = 'ann', extra?: ConnectFrame): Promise<V1Socket> => guest(srv.url, open, name, extra);

/** Joins `channel`; resolves with the `$subscribed` item. */
async function join(socket: V1Socket, channel: string): Promise<Item> {
  const subscribed = socket.until((i) => i.$subscribed?.channel === channel);
  const reply = await socket.call('Join', { channel }, nextId++);
  assert.deepEqual(reply, { Join: { channel }, $id: reply.$id });
  return (await subscribed).$subscribed as Item;
}

async function post(socket: V1Socket, channel: string, text: string): Promise<Item> {
  return socket.call('Post', { channel, text }, nextId++);
}

// Sockets close first (after hooks run in declaration order), then the server stops.
after(() => Promise.all(open.map((s) => s.close())));
const srv = suiteApp(fixture('channels-app'), { workers: 2 });

describe('history channels: joining and live items', () => {
  it('a join says $subscribed (not recovering) before the reply; items carry $off, +1 each; the caller gets its tagged copy with $off', async () => {
    const ann = await client('ann');
    const bob = await client('bob');
    const first = await join(ann, 'Public');
    assert.equal(first.recovering, false);
    assert.equal(first.recovered, false);
    assert.match(first.epoch, /^([A-Za-z0-9_-]{12})?$/, 'a random id (empty before the first publication)');
    const subscribedAt = ann.items.findIndex((i) => '$subscribed' in i);
    const replyAt = ann.items.findIndex((i) => 'Join' in i);
    assert.ok(subscribedAt < replyAt, '$subscribed comes before the call reply');
    await join(bob, 'Public');
    const d = first.offset as number;
    const own = await post(bob, 'Public', 'one');
    assert.deepEqual(own.$off, { Public: d + 1 }, "the caller's tagged copy carries the offset");
    await post(bob, 'Public', 'two');
    await post(bob, 'Public', 'three');
    await ann.until((i) => i.Post?.text === 'three');
    assertRun(offsets(ann.items, 'Public'), d + 1, d + 3);
    assert.deepEqual(
      ann.items.filter((i) => 'Post' in i).map((i) => Object.keys(i)),
      [['Post', '$off'], ['Post', '$off'], ['Post', '$off']],
    );
  });

  it('delivers in offset order with 4 publishers on 2 workers (lists of calls, interleaved commits)', async () => {
    const reader = await client('reader');
    const start = (await join(reader, 'Public')).offset as number;
    const writers = await Promise.all([1, 2, 3, 4].map((n) => client(`w${n}`)));
    const perWriter = 200;
    for (const w of writers) {
      for (let k = 0; k < perWriter; k += 20) {
        w.socket.send(Array.from({ length: 20 }, (_, j) => ({ Post: { channel: 'Public', text: `order-${k + j}` } })));
      }
    }
    const total = writers.length * perWriter;
    await reader.until((i) => i.$off?.Public === start + total, 30_000);
    const seen = offsets(reader.items, 'Public').filter((o) => o > start);
    assertRun(seen, start + 1, start + total);
  });

  it('a v0 socket gets no $subscribed frame; its items carry $off (old clients ignore it)', async () => {
    const old = await TestClient.connect(TestClient.url(srv.url, { Guest: { name: 'old' } }));
    try {
      assert.deepEqual(await old.call({ Join: { channel: 'Public' } }), [{ Join: { channel: 'Public' } }]);
      const bob = await client('bob2');
      await join(bob, 'Public');
      const own = await post(bob, 'Public', 'to-old');
      const frame = (await old.next()) as Item[];
      assert.deepEqual(frame, [{ Post: { text: 'to-old', pk: own.Post.pk }, $off: own.$off }]);
    } finally {
      await old.close();
    }
  });
});

describe('history channels: recovery', () => {
  it('$connect positions: a rejoin gets the missed items (recovered), then live ones; no gap, no duplicate at the seam', async () => {
    const ann = await client('ann');
    const bob = await client('bob');
    const sub = await join(ann, 'Public');
    await join(bob, 'Public');
    await post(bob, 'Public', 'before');
    const seen = (await ann.until((i) => i.Post?.text === 'before')).$off.Public as number;
    await ann.close();
    for (let k = 0; k < 5; k++) await post(bob, 'Public', `missed-${k}`);
    const back = await client('ann', { positions: { Public: { epoch: sub.epoch as string, offset: seen } } });
    const subscribed = back.until((i) => i.$subscribed?.channel === 'Public');
    back.socket.send({ Join: { channel: 'Public' }, $id: nextId++ });
    const s = (await subscribed).$subscribed as Item;
    assert.deepEqual({ recovered: s.recovered, recovering: s.recovering, offset: s.offset, epoch: s.epoch }, { recovered: true, recovering: true, offset: seen + 5, epoch: sub.epoch });
    const at = back.items.findIndex((i) => '$subscribed' in i);
    assert.deepEqual(
      back.items.slice(at + 1, at + 6).map((i) => i.Post.text),
      ['missed-0', 'missed-1', 'missed-2', 'missed-3', 'missed-4'],
      'the missed items follow $subscribed in its frame',
    );
    await post(bob, 'Public', 'live');
    await back.until((i) => i.Post?.text === 'live');
    assertRun(offsets(back.items, 'Public'), seen + 1, seen + 6);
  });

  it('past limits.maxRecoveredPublications (1000): recovered false, no items', async () => {
    const ann = await client('ann');
    const sub = await join(ann, 'Public');
    await ann.close();
    const bob = await client('bob');
    await bob.call('Burst', { channel: 'Public', n: 1001 }, nextId++);
    const back = await client('ann', { positions: { Public: { epoch: sub.epoch as string, offset: sub.offset as number } } });
    const s = await join(back, 'Public');
    assert.deepEqual({ recovered: s.recovered, recovering: s.recovering }, { recovered: false, recovering: true });
    assert.ok((s.offset as number) >= (sub.offset as number) + 1001);
    assert.equal(back.items.filter((i) => 'Burst' in i).length, 0, 'no item of an incomplete recovery');
  });

  it('after trimming (size 5): an older position is not recovered; a retained one is', async () => {
    const ann = await client('ann');
    const sub = await join(ann, 'Small');
    const bob = await client('bob');
    await bob.call('Burst', { channel: 'Small', n: 10 }, nextId++);
    const top = (sub.offset as number) + 10;
    const old = await client('ann', { positions: { Small: { epoch: sub.epoch as string, offset: sub.offset as number } } });
    const s1 = await join(old, 'Small');
    assert.deepEqual([s1.recovered, s1.recovering, s1.offset], [false, true, top]);
    const recent = await client('ann', { positions: { Small: { epoch: sub.epoch as string, offset: top - 3 } } });
    const s2 = await join(recent, 'Small');
    assert.deepEqual([s2.recovered, s2.offset], [true, top]);
    assertRun(offsets(recent.items, 'Small'), top - 2, top);
  });

  it('after sv.resetHistory: a new epoch; the old position is not recovered', async () => {
    const ann = await client('ann');
    const sub = await join(ann, 'Small');
    const bob = await client('bob');
    await bob.call('Burst', { channel: 'Small', n: 2 }, nextId++);
    await bob.call('Reset', { channel: 'Small' }, nextId++);
    const back = await client('ann', { positions: { Small: { epoch: sub.epoch as string, offset: sub.offset as number } } });
    const s = await join(back, 'Small');
    assert.notEqual(s.epoch, sub.epoch, 'the epoch changed');
    assert.deepEqual([s.recovered, s.recovering, s.offset], [false, true, (sub.offset as number) + 2]);
  });

  it('$recover: a connected client asks for a gap and gets it in a $subscribed frame (recovering)', async () => {
    const ann = await client('ann');
    const sub = await join(ann, 'Public');
    const bob = await client('bob');
    await bob.call('Burst', { channel: 'Public', n: 3 }, nextId++);
    await ann.until((i) => i.$off?.Public === (sub.offset as number) + 3);
    const before = ann.items.length;
    ann.socket.send({ $recover: { Public: { epoch: sub.epoch, offset: (sub.offset as number) + 1 } } });
    const s = (await ann.until((i) => i.$subscribed?.recovering === true)).$subscribed as Item;
    assert.deepEqual([s.recovered, s.offset], [true, (sub.offset as number) + 3]);
    assertRun(offsets(ann.items.slice(before), 'Public'), (sub.offset as number) + 2, (sub.offset as number) + 3);
  });
});

describe('channel authorization', () => {
  it("a declared channel's authorize refuses: CHANNEL_FORBIDDEN, Not allowed to join [Vault]; the connection is not in it", async () => {
    const ann = await client('ann');
    const reply = await ann.call('Join', { channel: 'Vault' }, nextId++);
    assert.deepEqual(reply, { Errors: ['Not allowed to join [Vault]'], code: 'CHANNEL_FORBIDDEN', $id: reply.$id });
    const me = await ann.call('Whoami', {}, nextId++);
    assert.deepEqual(me.Whoami.channels, []);
  });

  it('room:* authorize reads the Member table inside the call: refused, then allowed once a member (history on the room)', async () => {
    const ann = await client('ann');
    await ann.call('CreateRoom', { room: 'r1' }, nextId++);
    const refused = await ann.call('Join', { channel: 'room:r1' }, nextId++);
    assert.equal(refused.code, 'CHANNEL_FORBIDDEN');
    assert.deepEqual(refused.Errors, ['Not allowed to join [room:r1]']);
    await ann.call('AddMember', { room: 'r1', user: 'ann' }, nextId++);
    const s = await join(ann, 'room:r1');
    assert.deepEqual([s.recovering, s.offset], [false, 0]);
    const own = await post(ann, 'room:r1', 'hi room');
    assert.deepEqual(own.$off, { 'room:r1': 1 });
  });
});
