/**
 * Presence against the real server (channels-short-app: 2 workers, a 1 s resume grace period):
 * the members list on join, batched join/leave changes, `sv.presence` (list and count), meta
 * changes, a dropped connection staying a member through its grace period and a resume producing
 * no leave/join, a clean close leaving at once; 200 members joining and leaving concurrently
 * converge (every watcher's view = `sv.presence` = the sessions still in), and are ghost-free
 * after 50 of them are killed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fixture, suiteApp } from '../helpers/server.js';
import { prng } from '../helpers/prng.js';
import { guest, type ConnectFrame, type Item, type V1Socket } from './raw.js';

const open: V1Socket[] = [];
let nextId = 1;

const client = (name: string, extra?: ConnectFrame): Promise<V1Socket> => guest(srv.url, open, name, extra);

/** A client's view of a channel's members: the last full list, then the changes in order. */
function view(socket: V1Socket, channel: string): Map<string, unknown> {
  const members = new Map<string, unknown>();
  for (const item of socket.items) {
    const p = item.$presence as Item | undefined;
    if (p?.channel !== channel) continue;
    if (p.members) {
      members.clear();
      for (const m of p.members as Item[]) members.set(m.id as string, m.meta);
    }
    for (const m of (p.join ?? []) as Item[]) members.set(m.id as string, m.meta);
    for (const id of (p.leave ?? []) as string[]) members.delete(id);
  }
  return members;
}

function names(members: Map<string, unknown>): string[] {
  return [...members.values()].map((m) => (m as { name: string }).name).sort();
}

/** Resolves once `check` holds after some item arrived (or already), bounded in time. */
async function eventually(socket: V1Socket, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  if (check()) return;
  await socket.until(() => check(), timeoutMs);
}

// Sockets close first (after hooks run in declaration order), then the server stops.
after(() => Promise.all(open.map((s) => s.close())));
const srv = suiteApp(fixture('channels-short-app'), { workers: 2 });

describe('presence', () => {
  it('members list on join, then batched join/leave; sv.presence lists and counts; meta changes', async () => {
    const ann = await client('ann');
    await ann.call('Join', { channel: 'Lobby' }, nextId++);
    const list = (await ann.until((i) => i.$presence?.members !== undefined)).$presence as Item;
    assert.deepEqual(list.members, [{ id: list.members[0].id, meta: { name: 'ann' } }]);
    const bob = await client('bob');
    await bob.call('Join', { channel: 'Lobby' }, nextId++);
    await eventually(ann, () => names(view(ann, 'Lobby')).join() === 'ann,bob');
    assert.deepEqual(names(view(bob, 'Lobby')), ['ann', 'bob'], "bob's list on join");
    const members = (await ann.call('Members', { channel: 'Lobby' }, nextId++)).Members as Item[];
    assert.deepEqual(members.map((m) => m.meta.name).sort(), ['ann', 'bob']);
    assert.equal((await ann.call('Members', { channel: 'Lobby', countOnly: true }, nextId++)).Members, 2);
    await bob.call('SetMeta', { name: 'bobby' }, nextId++);
    await eventually(ann, () => names(view(ann, 'Lobby')).join() === 'ann,bobby');
    await bob.call('Leave', { channel: 'Lobby' }, nextId++);
    await eventually(ann, () => names(view(ann, 'Lobby')).join() === 'ann');
    assert.ok(bob.items.some((i) => i.$unsubscribed?.channel === 'Lobby'), 'the leaver is told');
  });

  it('a dropped connection stays a member through its grace period; its resume produces no leave/join; a clean close leaves at once', async () => {
    const watcher = await client('watcher');
    await watcher.call('Join', { channel: 'Lobby' }, nextId++);
    const carl = await client('carl');
    await carl.call('Join', { channel: 'Lobby' }, nextId++);
    await eventually(watcher, () => names(view(watcher, 'Lobby')).includes('carl'));
    const seen = watcher.items.length;
    carl.socket.ws.terminate();
    await carl.socket.closed;
    const back = await client('carl', { resume: carl.connected.resume });
    assert.equal(back.connected.resumed, true);
    const list = (await back.until((i) => i.$presence?.members !== undefined)).$presence as Item;
    assert.ok((list.members as Item[]).some((m) => m.meta.name === 'carl'), 'the resumed connection gets the list');
    // A round trip through the presence batch: another member joins and the watcher sees only that.
    const dora = await client('dora');
    await dora.call('Join', { channel: 'Lobby' }, nextId++);
    await eventually(watcher, () => names(view(watcher, 'Lobby')).includes('dora'));
    const changes = watcher.items.slice(seen).filter((i) => i.$presence !== undefined);
    for (const c of changes) {
      assert.ok(!((c.$presence.leave ?? []) as string[]).includes(list.members.find((m: Item) => m.meta.name === 'carl').id), 'no leave of the resumed member');
    }
    await back.close();
    await eventually(watcher, () => !names(view(watcher, 'Lobby')).includes('carl'), 900);
  });

  it('200 members joining and leaving concurrently over 2 workers converge; ghost-free after 50 are killed', async () => {
    const random = prng(10);
    const watcher = await client('watch200');
    await watcher.call('Join', { channel: 'Lobby' }, nextId++);
    const crowd = await Promise.all(Array.from({ length: 200 }, (_, k) => client(`m${k}`)));
    const inside = new Set<number>();
    const calls: Array<Promise<Item>> = [];
    for (let round = 0; round < 3; round++) {
      crowd.forEach((c, k) => {
        const joining = random() < 0.6;
        if (joining) inside.add(k);
        else inside.delete(k);
        calls.push(c.call(joining ? 'Join' : 'Leave', { channel: 'Lobby' }, nextId++));
      });
    }
    await Promise.all(calls);
    // The crowd members still in, plus the members of the earlier tests (watch200 among them).
    const expected = () => [...inside].map((k) => `m${k}`).concat(names(view(watcher, 'Lobby')).filter((n) => !/^m\d+$/.test(n))).sort();
    const wanted = expected();
    await eventually(watcher, () => names(view(watcher, 'Lobby')).join() === wanted.join(), 15_000);
    const listed = (await watcher.call('Members', { channel: 'Lobby' }, nextId++)).Members as Item[];
    assert.deepEqual(listed.map((m) => m.meta.name).sort(), wanted, 'sv.presence agrees');
    const someone = crowd[[...inside][0]!]!;
    assert.deepEqual(names(view(someone, 'Lobby')), wanted, "a member's own view agrees");
    const killed = [...inside].slice(0, 50);
    for (const k of killed) crowd[k]!.socket.ws.terminate();
    for (const k of killed) inside.delete(k);
    const after = expected();
    await eventually(watcher, () => names(view(watcher, 'Lobby')).join() === after.join(), 15_000);
    const count = (await watcher.call('Members', { channel: 'Lobby', countOnly: true }, nextId++)).Members;
    assert.equal(count, after.length, 'no ghosts once the grace period ran out');
  });
});
