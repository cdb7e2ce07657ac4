/**
 * Issue #14, "nothing silently lost" for channels without history (main/cluster-fanout.ts): a
 * publication a node could not append to its fan-out stream while Redis was unreachable, and
 * fan-out entries trimmed before a node read them, reach the other nodes' members of the channel
 * as `[{"$missed": {"channel": "Lobby"}}]` (the client library's `stale` event), and the nodes
 * go on receiving. Two nodes on a real redis-server (AOF on) restarted by the test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { createClient } from '../../src/client/index.js';
import type { ChannelEvent } from '../../src/client/channels.js';
import { FANOUT_PREFIX, partitionOf } from '../../src/main/cluster-fanout.js';
import { TestClient } from '../helpers/client.js';
import { Node, waitFor } from './cluster-harness.js';

const LOBBY = partitionOf('Lobby', 16);

async function readsLobby(node: Node): Promise<boolean> {
  return ((await node.health()).cluster as unknown as { fanout: { reading: number[] } }).fanout.reading.includes(LOBBY);
}

describe('cluster mode: fan-out gaps are told, not silent (issue #14)', { skip: redisSkip, timeout: 180_000 }, () => {
  let redis: RedisServer;
  let n1: Node;
  let n2: Node;

  before(async () => {
    redis = await RedisServer.start();
    [n1, n2] = await Promise.all(['n1', 'n2'].map((name) => Node.start(name, redis.url))) as [Node, Node];
  });
  after(async () => {
    for (const node of [n1, n2]) await node?.[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  });

  it('a publication made while Redis was unreachable: the other node tells its members $missed once Redis is back, then receives again', async () => {
    await using member = await TestClient.connect(n2.url);
    await member.call({ Join: { channel: 'Lobby' } }, 15_000);
    const events: ChannelEvent[] = [];
    const app = createClient({ url: n2.url, WebSocket });
    app.onChannel((e) => events.push(e));
    await app.call('Join', { channel: 'Lobby' });
    await using local = await TestClient.connect(n1.url);
    await local.call({ Join: { channel: 'Lobby' } }, 15_000);
    await waitFor('n2 reads Lobby', () => readsLobby(n2), 15_000);
    await using shouter = await TestClient.connect(n1.url);
    assert.deepEqual(await shouter.call({ Shout: { a: 'Lobby', b: 'Nobody', seq: 0 } }, 15_000), [{ Shouted: { seq: 0 } }]);
    assert.deepEqual(await member.next(15_000), [{ Shout: { seq: 0 } }]);
    assert.deepEqual(await local.next(15_000), [{ Shout: { seq: 0 } }]);

    await redis.stop('SIGTERM');
    // No write in it: it runs, and n1's own member gets it; n2's cannot (the stream is down).
    assert.deepEqual(await shouter.call({ Shout: { a: 'Lobby', b: 'Nobody', seq: 1 } }, 15_000), [{ Shouted: { seq: 1 } }]);
    assert.deepEqual(await local.next(15_000), [{ Shout: { seq: 1 } }]);
    await redis.start();

    assert.deepEqual(await member.next(30_000), [{ $missed: { channel: 'Lobby' } }], 'told, once Redis is back');
    await waitFor('the client library emits stale for Lobby', async () => events.some((e) => e.type === 'stale' && e.channel === 'Lobby'), 30_000);
    assert.deepEqual(events.find((e) => e.type === 'stale'), { type: 'stale', channel: 'Lobby', epoch: '', offset: 0 });
    // The nodes receive again (no node silently stops after a Redis restart).
    assert.deepEqual(await shouter.call({ Shout: { a: 'Lobby', b: 'Nobody', seq: 2 } }, 15_000), [{ Shouted: { seq: 2 } }]);
    assert.deepEqual(await member.next(30_000), [{ Shout: { seq: 2 } }]);
    app.close();
  });

  it('entries trimmed before a node read them: its members are told $missed, then get what follows', async () => {
    await using member = await TestClient.connect(n2.url);
    await member.call({ Join: { channel: 'Lobby' } }, 15_000);
    await waitFor('n2 reads Lobby', () => readsLobby(n2), 15_000);
    await using shouter = await TestClient.connect(n1.url);
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const list = (await admin.client('LIST')) as string;
      const reader = /id=(\d+) [^\n]*name=lexicons-n2-fanout/.exec(list)?.[1];
      assert.ok(reader, `n2's fan-out reader is connected:\n${list}`);
      // Atomically: cut n2's reader off, append an entry, trim it away; n2 reconnects after that.
      const stream = FANOUT_PREFIX + LOBBY;
      await admin.multi().client('KILL', 'ID', reader).xadd(stream, '0-*', 'n', 'n1', 'c', '["Lobby"]', 'b', '[{"Shout":{"seq":98}}]').xtrim(stream, 'MAXLEN', 0).exec();
    } finally {
      admin.disconnect();
    }
    assert.deepEqual(await shouter.call({ Shout: { a: 'Lobby', b: 'Nobody', seq: 99 } }, 15_000), [{ Shouted: { seq: 99 } }]);
    assert.deepEqual(await member.next(30_000), [{ $missed: { channel: 'Lobby' } }], 'the trimmed entry is told');
    assert.deepEqual(await member.next(30_000), [{ Shout: { seq: 99 } }], 'then what follows');
  });
});

describe('cluster mode: fan-out streams of the version before numbered entries (issue #14)', { skip: redisSkip, timeout: 120_000 }, () => {
  it('are deleted when a node starts (their time ids would refuse `0-*`); numbered ones are kept', async () => {
    await using redis = await RedisServer.start();
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      await admin.xadd(FANOUT_PREFIX + LOBBY, '*', 'n', 'old', 'c', '["Lobby"]', 'b', '[]');
      await admin.xadd(`${FANOUT_PREFIX}0`, '0-*', 'n', 'new', 'c', '["x"]', 'b', '[]');
      await using node = await Node.start('n1', redis.url);
      await waitFor('the time-id stream is deleted', async () => (await admin.exists(FANOUT_PREFIX + LOBBY)) === 0, 15_000);
      assert.equal(await admin.xlen(`${FANOUT_PREFIX}0`), 1, 'a numbered stream is kept');
      // The node appends to Lobby's partition again (numbered from 1).
      await using member = await TestClient.connect(node.url);
      await member.call({ Join: { channel: 'Lobby' } }, 15_000);
      await using shouter = await TestClient.connect(node.url);
      assert.deepEqual(await shouter.call({ Shout: { a: 'Lobby', b: 'Nobody', seq: 0 } }, 15_000), [{ Shouted: { seq: 0 } }]);
      await waitFor('the publication is appended, numbered', async () => ((await admin.xrange(FANOUT_PREFIX + LOBBY, '-', '+')) as Array<[string, string[]]>)[0]?.[0] === '0-1', 15_000);
    } finally {
      admin.disconnect();
    }
  });
});
