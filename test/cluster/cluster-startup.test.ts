/**
 * Issue #14, a node's start in a cluster: while it waits for Redis and catches up with the commit
 * stream its port already answers: `/health` 200 with phase `catching-up`, `/ready` 503, WebSocket
 * upgrades 503 with a message saying why; once live, the app listens on the same port. Startup
 * tasks run once per cluster start (on the node that takes the lease as it starts), `everyNode`
 * ones on every node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { TestClient } from '../helpers/client.js';
import { freePort } from '../helpers/server.js';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { drive, Node, waitFor } from './cluster-harness.js';

describe('cluster mode: a node starting (issue #14)', { skip: redisSkip }, () => {
  it('a catching-up node serves /health (catching-up) and refuses WebSocket upgrades with 503 until live, on the port it then listens on', async () => {
    await using redis = await RedisServer.start();
    await using n1 = await Node.start('u1', redis.url);
    const writer = await TestClient.connect(n1.url);
    assert.deepEqual(await drive(writer, Array.from({ length: 300 }, () => ({ Increment: { key: 'k' } }))), { acknowledged: 300, failed: [] });
    await writer.close();
    const target = (await n1.health()).cluster.applied;
    // Redis holds every client's commands for a while: the new node cannot connect nor catch up meanwhile.
    const admin = new Redis(redis.url);
    const port = await freePort();
    let starting: Promise<Node> | undefined;
    try {
      await admin.call('CLIENT', 'PAUSE', '8000', 'ALL');
      starting = Node.start('u2', redis.url, { args: ['--port', String(port)] });
      const base = `http://127.0.0.1:${port}`;
      let health: { status: string; phase: string; cluster: { node: string; phase: string } } | undefined;
      await waitFor('the catching-up node answers /health', async () => {
        health = (await fetch(`${base}/health`).then((r) => (r.status === 200 ? r.json() : undefined)).catch(() => undefined)) as typeof health;
        return health !== undefined;
      }, 30_000);
      assert.equal(health!.phase, 'catching-up');
      assert.equal(health!.cluster.node, 'u2');
      assert.equal(health!.cluster.phase, 'catching-up');
      const ready = await fetch(`${base}/ready`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), { ready: false, reason: 'catching-up' });
      await assert.rejects(TestClient.connect(`ws://127.0.0.1:${port}`), /HTTP 503/);
      const page = await fetch(`${base}/`);
      assert.equal(page.status, 503);
      assert.match(await page.text(), /catching up with the commit stream/);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      admin.disconnect();
    }
    await using n2 = await starting!;
    assert.equal(n2.server!.port, port, 'the app listens on the port that answered while catching up');
    const h = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { phase: string; cluster: { phase: string; applied: number } };
    assert.equal(h.cluster.phase, 'live');
    assert.ok(h.cluster.applied >= target, `caught up: applied ${h.cluster.applied} of ${target}`);
    await using client = await TestClient.connect(n2.url);
    assert.deepEqual(await client.call({ Increment: { key: 'k' } }, 15_000), [{ Incremented: { key: 'k' } }]);
  });

  it('startup tasks run once per cluster start, on the node that takes the lease; everyNode ones on every node', async () => {
    await using redis = await RedisServer.start();
    const nodes = await Promise.all(['v1', 'v2', 'v3'].map((name) => Node.start(name, redis.url)));
    try {
      type Runs = Record<'Seed' | 'NodeSeed', Record<string, number>>;
      const runsOn = async (node: Node): Promise<{ pid: number; runs: Runs }> => {
        await using client = await TestClient.connect(node.url);
        await client.call({ Increment: { key: 'sync' } }, 15_000); // the node applied everything before this
        const [frame] = (await client.call({ Ticks: {} }, 15_000)) as [{ Ticks: { pid: number; runs: Runs } }];
        return frame.Ticks;
      };
      const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
      const pids = (await Promise.all(nodes.map((n) => runsOn(n)))).map((t) => String(t.pid));
      let runs: Runs | undefined;
      await waitFor('every node ran NodeSeed', async () => {
        runs = (await runsOn(nodes[0]!)).runs;
        return Object.keys(runs.NodeSeed).length === 3;
      }, 30_000);
      assert.deepEqual(Object.keys(runs!.NodeSeed).sort(), [...pids].sort(), 'NodeSeed once on each node');
      assert.ok(Object.values(runs!.NodeSeed).every((n) => n === 1));
      assert.equal(sum(runs!.Seed), 1, `Seed ran once in the cluster: ${JSON.stringify(runs!.Seed)}`);
      const seeder = Object.keys(runs!.Seed)[0]!;
      const leaders = await Promise.all(nodes.map(async (n) => (await n.health()).cluster.leader));
      assert.equal(leaders.filter(Boolean).length, 1);
      assert.equal(pids[leaders.indexOf(true)], seeder, 'the lease holder ran Seed');
      // A node that is not the lease holder restarts: NodeSeed runs on it again, Seed does not.
      const other = nodes[leaders.indexOf(false)]!;
      await other.server!.stop();
      await other.start();
      const restarted = String((await runsOn(other)).pid);
      await waitFor('the restarted node ran NodeSeed', async () => ((await runsOn(nodes[0]!)).runs.NodeSeed[restarted] ?? 0) === 1, 30_000);
      const after = (await runsOn(other)).runs;
      assert.equal(sum(after.Seed), 1, 'Seed did not run again');
      assert.equal(sum(after.NodeSeed), 4);
    } finally {
      for (const node of nodes) await node[Symbol.asyncDispose]();
    }
  });
});
