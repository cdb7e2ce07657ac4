/**
 * Issue #14, per-node fan-out subscriptions (main/cluster-fanout.ts): the publications travel in
 * K partition streams and a node reads only the partitions where it has a local subscriber. Three
 * nodes on a real redis-server: a node without a subscriber in a partition never receives its
 * frames (`/health` cluster.fanout, `lexicons_cluster_fanout_frames_total`); a publication to two
 * channels in two partitions reaches a member of both once; a client joining a history channel on
 * one node while another node publishes gets every item after its join position once, in order.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient } from '../helpers/client.js';
import { redisSkip } from '../../bench/loadgen/redis-server.js';
import { partitionOf } from '../../src/main/cluster-fanout.js';
import { clusterOfThree, drive, Node, waitFor } from './cluster-harness.js';

type Fanout = { partitions: number; reading: number[]; received: number };

async function fanoutOf(node: Node): Promise<Fanout> {
  return ((await node.health()).cluster as unknown as { fanout: Fanout }).fanout;
}

async function metric(node: Node, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.server!.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name}`);
  return Number(line.split(' ')[1]);
}

/** Items named `name` in the next frames until `count` were seen. */
async function collect(client: TestClient, name: string, count: number): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  while (items.length < count) {
    const frame = (await client.next(20_000)) as Array<Record<string, unknown>>;
    for (const item of frame) if (item[name] !== undefined) items.push(item);
  }
  return items;
}

/** A lexicons.v1 client that joined `channel`: its `$subscribed` offset (the join position). */
async function joinV1(url: string, channel: string): Promise<{ client: TestClient; offset: number }> {
  const client = await TestClient.connect(url, { protocols: 'lexicons.v1' });
  client.send({ $connect: {} });
  const [connected] = (await client.next(15_000)) as [Record<string, unknown>];
  assert.ok(connected.$connected !== undefined, JSON.stringify(connected));
  client.send({ Join: { channel } });
  for (;;) {
    const frame = (await client.next(15_000)) as Array<Record<string, { offset?: number } | undefined>>;
    const head = frame.find((i) => i.$subscribed !== undefined);
    if (head !== undefined) return { client, offset: head.$subscribed!.offset! };
  }
}

describe('cluster mode: fan-out partitions (issue #14)', { skip: redisSkip }, () => {
  const cluster = clusterOfThree();

  it('partitionOf is stable (every node computes the same) and spreads names', () => {
    assert.equal(partitionOf('Room', 16), 10);
    assert.equal(partitionOf('Lobby', 16), 3);
    const used = new Set(Array.from({ length: 200 }, (_, i) => partitionOf(`room:${i}`, 16)));
    assert.equal(used.size, 16);
  });

  it('a node reads only the partitions it has subscribers in; the others never reach it', async () => {
    const [n1, n2, n3] = cluster.nodes as [Node, Node, Node];
    for (const node of cluster.nodes) assert.deepEqual(await fanoutOf(node), { partitions: 16, reading: [], received: 0 });
    const room = await TestClient.connect(n1.url);
    assert.deepEqual(await room.call({ Join: { channel: 'Room' } }, 15_000), [{ Join: { channel: 'Room' } }]);
    const lobby = await TestClient.connect(n2.url);
    assert.deepEqual(await lobby.call({ Join: { channel: 'Lobby' } }, 15_000), [{ Join: { channel: 'Lobby' } }]);
    // The partition is read once the node's fan-out reader took it on (a round trip after the join).
    await waitFor('n1 reads Room', async () => (await fanoutOf(n1)).reading.includes(10), 15_000);
    await waitFor('n2 reads Lobby', async () => (await fanoutOf(n2)).reading.includes(3), 15_000);
    const M = 60;
    const toRoom = await TestClient.connect(n3.url);
    const toLobby = await TestClient.connect(n1.url);
    const sent = await Promise.all([
      drive(toRoom, Array.from({ length: M }, (_, seq) => ({ Say: { channel: 'Room', from: 'n3', seq } }))),
      drive(toLobby, Array.from({ length: M }, (_, seq) => ({ Say: { channel: 'Lobby', from: 'n1', seq } }))),
    ]);
    assert.deepEqual(sent, [{ acknowledged: M, failed: [] }, { acknowledged: M, failed: [] }]);
    const seqs = (items: Array<Record<string, unknown>>): number[] => items.map((i) => (i.Chat as { seq: number }).seq);
    assert.deepEqual(seqs(await collect(room, 'Chat', M)), Array.from({ length: M }, (_, i) => i), 'Room on n1, from n3: every item once, in order');
    assert.deepEqual(seqs(await collect(lobby, 'Chat', M)), Array.from({ length: M }, (_, i) => i), 'Lobby on n2, from n1: every item once, in order');
    // n1 read Room's frames of n3 (its own Lobby frames are not read back), n2 Lobby's of n1, n3 nothing.
    assert.deepEqual(await fanoutOf(n1), { partitions: 16, reading: [10], received: M });
    assert.deepEqual(await fanoutOf(n2), { partitions: 16, reading: [3], received: M });
    assert.deepEqual(await fanoutOf(n3), { partitions: 16, reading: [], received: 0 });
    assert.equal(await metric(n3, 'lexicons_cluster_fanout_frames_total'), 0);
    assert.equal(await metric(n1, 'lexicons_cluster_fanout_frames_total'), M);
    // The last local subscriber leaves: the node stops reading the partition.
    await lobby.close();
    await waitFor('n2 stops reading Lobby', async () => (await fanoutOf(n2)).reading.length === 0, 15_000);
    await Promise.all([room, toRoom, toLobby].map((c) => c.close()));
  });

  it('a publication to two channels in two partitions reaches a member of both once', async () => {
    const [n1, n2] = cluster.nodes as [Node, Node];
    const both = await TestClient.connect(n2.url);
    const onlyLobby = await TestClient.connect(n2.url);
    await both.call({ Join: { channel: 'Room' } }, 15_000);
    await both.call({ Join: { channel: 'Lobby' } }, 15_000);
    await onlyLobby.call({ Join: { channel: 'Lobby' } }, 15_000);
    await waitFor('n2 reads both partitions', async () => String((await fanoutOf(n2)).reading) === '3,10', 15_000);
    const shouter = await TestClient.connect(n1.url);
    const M = 20;
    assert.deepEqual(await drive(shouter, Array.from({ length: M }, (_, seq) => ({ Shout: { a: 'Room', b: 'Lobby', seq } }))), { acknowledged: M, failed: [] });
    for (const client of [both, onlyLobby]) {
      const items = await collect(client, 'Shout', M);
      assert.deepEqual(
        items.map((i) => (i.Shout as { seq: number }).seq),
        Array.from({ length: M }, (_, i) => i),
      );
    }
    // A marker after the shouts: nothing more came before it (no second copy).
    const marker = await TestClient.connect(n1.url);
    await marker.call({ Say: { channel: 'Lobby', from: 'marker', seq: 0 } }, 15_000);
    for (const client of [both, onlyLobby]) {
      const frame = (await client.next(20_000)) as Array<Record<string, unknown>>;
      assert.deepEqual(frame, [{ Chat: { from: 'marker', seq: 0 } }], 'the next frame is the marker: each shout came once');
    }
    await Promise.all([both, onlyLobby, shouter, marker].map((c) => c.close()));
  });

  it('joining a history channel on a node that does not read it yet, while another node publishes: every item after the join position once, in order', async () => {
    const [n1, , n3] = cluster.nodes as [Node, Node, Node];
    assert.deepEqual((await fanoutOf(n3)).reading, [], 'n3 reads no partition yet');
    const sender = await TestClient.connect(n1.url);
    const M = 150;
    const sending = drive(sender, Array.from({ length: M }, (_, seq) => ({ Say: { channel: 'Room', from: 'seam', seq } })), 4);
    // Join in the middle of the sends.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const { client: joiner, offset: start } = await joinV1(n3.url, 'Room');
    const offsets: number[] = [];
    let seamLast = -1;
    const outcome = await sending;
    assert.deepEqual(outcome, { acknowledged: M, failed: [] });
    // The Room's offset once every send was acknowledged: where a client joining on n1 now starts.
    const top = (await joinV1(n1.url, 'Room')).offset;
    while ((offsets.length === 0 ? start : offsets[offsets.length - 1]!) < top) {
      const frame = (await joiner.next(20_000)) as Array<Record<string, unknown>>;
      for (const item of frame) {
        const off = (item.$off as Record<string, number> | undefined)?.Room;
        if (off !== undefined && (item.Chat as { from: string } | undefined)?.from === 'seam') {
          offsets.push(off);
          seamLast = (item.Chat as { seq: number }).seq;
        }
      }
    }
    assert.ok(start < top, `joined in the middle (${start} < ${top})`);
    assert.deepEqual(offsets, Array.from({ length: top - start }, (_, i) => start + 1 + i), `from the join position ${start} to ${top}: every offset once, in order`);
    assert.equal(seamLast, M - 1, 'the last item is the last one sent');
    await Promise.all([sender, joiner].map((c) => c.close()));
  });
});
