/**
 * Issue #14, cluster mode: three `lexicons start --redis` nodes (child processes, `--workers 1`,
 * each with its own data folder) on a real redis-server started by the test. Chat fan-out reaches
 * every subscriber on every node once, in per-sender order; counter increments spread over the
 * nodes end exact; transfers at high contention keep the total; a unique e-mail registered on
 * three nodes at once yields one row; every node ends with the same tables.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient } from '../helpers/client.js';
import { redisSkip } from '../../bench/loadgen/redis-server.js';
import { agreedState, clusterOfThree, drive } from './cluster-harness.js';

/** Increments per client (4 clients); CLUSTER_N overrides. */
const N = Number(process.env.CLUSTER_N ?? 500);

describe('cluster mode: 3 nodes on one Redis (issue #14)', { skip: redisSkip }, () => {
  const cluster = clusterOfThree();
  const urls = (): string[] => cluster.nodes.map((n) => n.url);

  it('chat: every subscriber on every node gets every message once, in per-sender order', async () => {
    const channel = 'Room';
    const receivers: TestClient[] = [];
    for (const url of urls()) {
      for (let i = 0; i < 2; i++) {
        const client = await TestClient.connect(url);
        assert.deepEqual(await client.call({ Join: { channel } }), [{ Join: { channel } }]);
        receivers.push(client);
      }
    }
    const M = 150;
    const senders = await Promise.all(urls().map((url) => TestClient.connect(url)));
    const sent = await Promise.all(senders.map((client, s) => drive(client, Array.from({ length: M }, (_, seq) => ({ Say: { channel, from: `s${s}`, seq } })))));
    for (const outcome of sent) assert.deepEqual(outcome, { acknowledged: M, failed: [] });
    const expected = senders.length * M;
    await Promise.all(
      receivers.map(async (client, r) => {
        const seen = new Map<string, number[]>();
        let count = 0;
        while (count < expected) {
          const frame = (await client.next(10_000)) as Array<{ Chat?: { from: string; seq: number } }>;
          for (const item of frame) {
            if (item.Chat === undefined) continue;
            const list = seen.get(item.Chat.from) ?? [];
            list.push(item.Chat.seq);
            seen.set(item.Chat.from, list);
            count++;
          }
        }
        for (let s = 0; s < senders.length; s++) {
          assert.deepEqual(seen.get(`s${s}`), Array.from({ length: M }, (_, i) => i), `receiver ${r} (node ${Math.floor(r / 2) + 1}), sender s${s}: once each, in order`);
        }
        assert.equal(client.pending.length, 0, `receiver ${r}: nothing more than the messages`);
      }),
    );
    await Promise.all([...receivers, ...senders].map((c) => c.close()));
    assert.equal((await agreedState(urls())).messages, expected);
  });

  it(`counters: 4 x ${N} increments of one counter spread over the nodes end exact`, async () => {
    const started = Date.now();
    const clients = await Promise.all([0, 1, 2, 3].map((i) => TestClient.connect(urls()[i % 3]!)));
    const calls = Array.from({ length: N }, () => ({ Increment: { key: 'hot' } }));
    const outcomes = await Promise.all(clients.map((client) => drive(client, calls, 8, 60_000)));
    for (const outcome of outcomes) assert.deepEqual(outcome, { acknowledged: N, failed: [] });
    const state = await agreedState(urls());
    assert.equal(state.counters.hot, 4 * N);
    console.log(`cluster counters: ${4 * N} increments of one counter over 3 nodes in ${Date.now() - started} ms`);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('transfers at high contention keep the total, on every node', async () => {
    const accounts = 5;
    const opener = await TestClient.connect(urls()[0]!);
    const opened = await drive(opener, Array.from({ length: accounts }, (_, i) => ({ Open: { key: `a${i}`, balance: 1000 } })));
    assert.equal(opened.acknowledged, accounts);
    await opener.close();
    let seed = 7;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const clients = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => TestClient.connect(urls()[i % 3]!)));
    const outcomes = await Promise.all(
      clients.map((client) => drive(client, Array.from({ length: 200 }, () => ({ Transfer: { from: `a${random(accounts)}`, to: `a${random(accounts)}`, amount: 1 + random(300) } })), 8, 60_000)),
    );
    for (const outcome of outcomes) assert.deepEqual(outcome.failed, []);
    const state = await agreedState(urls());
    const total = Object.values(state.balances).reduce((a, b) => a + b, 0);
    assert.equal(total, accounts * 1000);
    assert.ok(Object.values(state.balances).every((b) => b >= 0), 'no balance below zero');
    await Promise.all(clients.map((c) => c.close()));
  });

  it('a unique e-mail registered on three nodes at once yields one row', async () => {
    const clients = await Promise.all(urls().map((url) => TestClient.connect(url)));
    for (let round = 0; round < 10; round++) {
      const email = `user${round}@example.com`;
      const replies = (await Promise.all(clients.map((client) => client.call({ Register: { email } }, 15_000)))) as Array<Array<Record<string, unknown>>>;
      const registered = replies.filter((r) => r[0]?.Registered !== undefined);
      assert.equal(registered.length, 1, `round ${round}: exactly one registration wins: ${JSON.stringify(replies)}`);
      for (const reply of replies) if (reply[0]?.Registered === undefined) assert.match(JSON.stringify(reply), /already exists/);
    }
    const state = await agreedState(urls());
    assert.deepEqual(state.users, Array.from({ length: 10 }, (_, i) => `user${i}@example.com`).sort());
    // /health names the node and the last record it applied.
    const health = (await (await fetch(`http://127.0.0.1:${cluster.nodes[0]!.server!.port}/health`)).json()) as { cluster: { node: string; applied: number } };
    assert.equal(health.cluster.node, 'n1');
    assert.ok(health.cluster.applied > 10, `applied ${health.cluster.applied}`);
    await Promise.all(clients.map((c) => c.close()));
  });
});
