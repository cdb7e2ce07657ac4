/**
 * `db.queryJson` rows in replies against the real server (channels-app's `Digest`, 2 workers,
 * lexicons.v1 sockets): the rows travel as bytes into the packed frame (src/json-pieces.ts), and
 * every path that needs the frame's text still gets the right one — the caller's tagged items of
 * a call with `$id`, a response to a history channel (its members live, with `$off`, and a later
 * joiner's recovery from the stored history), a `$key` replay of the first outcome, and a send
 * without `$id`. Texts with non-ASCII characters and escapes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fixture, suiteApp } from '../helpers/server.js';
import { guest, joinChannel, type ConnectFrame, type Item, type V1Socket } from './raw.js';

const open: V1Socket[] = [];
let nextId = 1;

const client = (name: string, extra?: ConnectFrame): Promise<V1Socket> => guest(srv.url, open, name, extra);

const join = (socket: V1Socket, channel: string): Promise<Item> => joinChannel(socket, channel, nextId++);

after(() => Promise.all(open.map((s) => s.close())));
const srv = suiteApp(fixture('channels-app'), { workers: 2 });

const TEXTS = ['0 ünïcödé ✓', '1 quote " backslash \\ tab\t', '2 漢字 😀 \u2028', '3 {"pk":"x"}'];

describe('queryJson rows in replies', () => {
  it('a call with $id, a history response (live, recovered), a $key replay and a plain send carry the rows as they were', async () => {
    const ann = await client('ann');
    const bob = await client('bob');
    const sub = await join(ann, 'Strict');
    await join(bob, 'Strict');
    const rows: Item[] = [];
    for (const text of TEXTS) {
      const posted = await bob.call('Post', { channel: 'Strict', text }, nextId++);
      rows.push({ pk: posted.Post.pk, channel: 'Strict', text, author: 'bob' });
    }

    // The caller: its list item and its copy of the response, tagged, in its reply frame.
    const id = nextId++;
    bob.socket.send({ Digest: { channel: 'Strict' }, $id: id, $key: 'digest-1' });
    const sent = await bob.until((i) => i.$id === id && 'Digest' in i && 'rows' in i.Digest);
    assert.deepEqual(sent, { Digest: { channel: 'Strict', rows }, $id: id });
    const own = await bob.until((i) => i.$id === id && 'Digest' in i && 'reversed' in i.Digest);
    assert.deepEqual(own.Digest, { channel: 'Strict', reversed: [...rows].reverse() });
    const off = own.$off.Strict as number;

    // A member: the response, live, with the same offset.
    const live = await ann.until((i) => i.Digest?.reversed !== undefined);
    assert.deepEqual(live, { Digest: { channel: 'Strict', reversed: [...rows].reverse() }, $off: { Strict: off } });

    // A joiner recovering from before it: the stored publication's text.
    const carl = await client('carl', { positions: { Strict: { epoch: sub.epoch as string, offset: off - 1 } } });
    const recovered = carl.until((i) => i.Digest?.reversed !== undefined);
    await join(carl, 'Strict');
    assert.deepEqual(await recovered, live);

    // The same $key again, after another row: the first outcome (untagged, stored as text), re-tagged.
    await bob.call('Post', { channel: 'Strict', text: '4 later' }, nextId++);
    const replayId = nextId++;
    bob.socket.send({ Digest: { channel: 'Strict' }, $id: replayId, $key: 'digest-1' });
    const replay = await bob.until((i) => i.$id === replayId && 'rows' in (i.Digest ?? {}));
    assert.deepEqual(replay, { ...sent, $id: replayId });

    // Without $id: the list item as sent.
    bob.socket.send({ Digest: { channel: 'Strict', limit: 2 } });
    const plain = await bob.until((i) => i.$id === undefined && i.Digest?.rows?.length === 2);
    assert.deepEqual(plain, { Digest: { channel: 'Strict', rows: rows.slice(0, 2) } });
  });
});
