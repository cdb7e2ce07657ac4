/**
 * The recovery seam under load and across a restart (channels-app, 2 workers), with raw
 * lexicons.v1 sockets:
 *
 * - a publisher bursts into Public without pause while a reader's socket is destroyed (no close
 *   frame) 20 times at random moments (seeded) and reconnects with its last position: every
 *   connection receives exactly position+1, position+2, ... (no gap, no duplicate, in order,
 *   recovered items then live ones), and the reader ends with every offset published;
 * - offsets and history survive a graceful restart: a position from before it recovers, and
 *   offsets go on from where they were.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prng } from '../helpers/prng.js';
import { fixture, startApp, suiteApp } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import { assertRun, joinChannel, offsets, v1, type Item, type V1Socket } from './raw.js';

let nextId = 1;

const join = (socket: V1Socket, channel: string): Promise<Item> => joinChannel(socket, channel, nextId++);

describe('the recovery seam', () => {
  const srv = suiteApp(fixture('channels-app'), { workers: 2 });

  it('20 destroyed connections while a publisher bursts: each reconnect gets position+1.. exactly; nothing lost', async () => {
    const random = prng(2026);
    const publisher = await v1(srv.url, { headers: { Guest: { name: 'pub' } } });
    let reader = await v1(srv.url, { headers: { Guest: { name: 'reader' } } });
    const first = await join(reader, 'Public');
    const epoch = first.epoch as string;
    const start = first.offset as number;
    let stop = false;
    let published = 0;
    const publishing = (async () => {
      while (!stop) {
        await publisher.call('Burst', { channel: 'Public', n: 10 }, nextId++);
        published += 10;
      }
    })();
    let position = start;
    const seen: number[] = [];
    try {
      for (let round = 0; round < 20; round++) {
        // Wait for a random number of items, then destroy the socket (the server sees 1006).
        const wanted = position + 5 + Math.floor(random() * 150);
        await reader.until((i) => (i.$off?.Public ?? 0) >= wanted, 20_000);
        reader.socket.ws.terminate();
        await reader.socket.closed;
        const got = offsets(reader.items, 'Public');
        assertRun(got, position + 1, got.at(-1)!, `connection ${round}`);
        seen.push(...got);
        position = got.at(-1)!;
        reader = await v1(srv.url, { headers: { Guest: { name: 'reader' } }, positions: { Public: { epoch, offset: position } } });
        const s = await join(reader, 'Public');
        assert.deepEqual([s.recovered, s.recovering], [true, true], `round ${round}: ${JSON.stringify(s)}`);
      }
    } finally {
      stop = true;
      await publishing;
    }
    const end = start + published;
    await reader.until((i) => i.$off?.Public === end, 20_000);
    const last = offsets(reader.items, 'Public');
    assertRun(last, position + 1, end, 'the last connection');
    seen.push(...last);
    assertRun(seen, start + 1, end, 'across 21 connections');
    process.stdout.write(`# seam: ${published} publications, 20 destroyed connections, every offset once in order\n`);
    await Promise.all([reader.close(), publisher.close()]);
  });
});

describe('history across a restart', () => {
  it('a position from before a graceful restart recovers; offsets go on from where they were', async () => {
    await using data = await tempDir();
    let epoch: string;
    let position: number;
    {
      await using srv = await startApp(fixture('channels-app'), { data: data.path });
      const ann = await v1(srv.url, { headers: { Guest: { name: 'ann' } } });
      const sub = await join(ann, 'Public');
      epoch = sub.epoch as string;
      await ann.call('Post', { channel: 'Public', text: 'before' }, nextId++);
      position = (sub.offset as number) + 1;
      await ann.close();
      const bob = await v1(srv.url, { headers: { Guest: { name: 'bob' } } });
      for (const text of ['missed-1', 'missed-2', 'missed-3']) await bob.call('Post', { channel: 'Public', text }, nextId++);
      await bob.close();
    }
    await using srv = await startApp(fixture('channels-app'), { data: data.path });
    const back = await v1(srv.url, { headers: { Guest: { name: 'ann' } }, positions: { Public: { epoch, offset: position } } });
    const s = await join(back, 'Public');
    assert.deepEqual([s.recovered, s.offset], [true, position + 3]);
    assert.match(s.epoch as string, /^[A-Za-z0-9_-]{12}$/, "the channel's epoch (ann joined before its first publication: '')");
    const own = await back.call('Post', { channel: 'Public', text: 'after' }, nextId++);
    assert.deepEqual(own.$off, { Public: position + 4 });
    assert.deepEqual(
      back.items.filter((i) => i.Post !== undefined).map((i) => i.Post.text),
      ['missed-1', 'missed-2', 'missed-3', 'after'],
    );
    assertRun(offsets(back.items, 'Public'), position + 1, position + 4);
    await back.close();
  });
});
