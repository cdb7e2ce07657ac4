/**
 * Issue #14, cluster operations (docs/cluster.md): the commit stream is trimmed below what every
 * node that is not gone has snapshotted (less the conflict window), a node that is down holds the
 * trim until it counts as gone, a node down past the trim rejoins from the published snapshot (and
 * an empty node joins from it) with the same tables as the others; interval tasks run on the
 * lease holder only unless `everyNode`, and the lease passes on when its holder stops; a live
 * query on one node sees the commits made on another.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { TestClient } from '../helpers/client.js';
import { RedisServer, redisSkip } from '../../bench/loadgen/redis-server.js';
import { agreedState, drive, Node, waitFor, type NodeOptions } from './cluster-harness.js';

/** The first record the commit stream keeps (0: empty). */
async function firstKept(redis: Redis): Promise<number> {
  const [entry] = (await redis.xrange('lexicons:commits', '-', '+', 'COUNT', 1)) as Array<[string, string[]]>;
  return entry === undefined ? 0 : Number(entry[0].split('-')[1]);
}

/** The registry entries (`lexicons:nodes`). */
async function registry(redis: Redis): Promise<Record<string, { applied: number; snapshotted: number; heartbeat: number }>> {
  return Object.fromEntries(Object.entries(await redis.hgetall('lexicons:nodes')).map(([k, v]) => [k, JSON.parse(v) as never]));
}

describe('cluster operations: trimming and rejoin from the published snapshot (issue #14)', { skip: redisSkip }, () => {
  const W = 20;
  const options: NodeOptions = { args: ['--snapshot-seconds', '0.3'], env: { LEXICONS_CLUSTER_WINDOW: String(W), LEXICONS_CLUSTER_GONE_SECONDS: '10' } };

  it('trims below every node, is held by a node that is down, and a node down past the trim rejoins from the snapshot', async () => {
    await using redis = await RedisServer.start();
    const r = new Redis(redis.url);
    try {
      await using n1 = await Node.start('t1', redis.url, options);
      await using n2 = await Node.start('t2', redis.url, options);
      await using n3 = await Node.start('t3', redis.url, options);
      const writer = await TestClient.connect(n1.url);
      const calls = Array.from({ length: 150 }, () => ({ Increment: { key: 'a' } }));
      assert.deepEqual(await drive(writer, calls), { acknowledged: 150, failed: [] });

      // Every node snapshots, the lease holder publishes and trims: the stream shrinks.
      await waitFor('the commit stream trimmed', async () => (await firstKept(r)) > 1, 30_000);
      const nodes = await registry(r);
      const published = Number(await r.hget('lexicons:snapshot', 'seq'));
      const low = Math.min(published, ...Object.values(nodes).map((n) => n.snapshotted));
      assert.ok((await firstKept(r)) <= low - W, `first kept ${await firstKept(r)}, lowest snapshot ${low}, window ${W}`);
      assert.ok((await r.xlen('lexicons:commits')) < 150);
      const view = (await n1.health()).cluster;
      assert.deepEqual(view.nodes.map((n) => [n.node, n.gone]), [['t1', false], ['t2', false], ['t3', false]]);
      assert.equal(view.phase, 'live');

      // t3 goes down; the others write on: the trim stays at t3's snapshot until t3 counts as gone.
      await n3.kill();
      const down = (await registry(r)).t3!;
      assert.deepEqual(await drive(writer, calls), { acknowledged: 150, failed: [] });
      await waitFor('a snapshot published past t3 and its window', async () => Number(await r.hget('lexicons:snapshot', 'seq')) > down.snapshotted + W + 10, 30_000);
      const held = await firstKept(r);
      const t3 = (await n1.health()).cluster.nodes.find((n) => n.node === 't3')!;
      assert.equal(t3.gone, false, 't3 is not gone yet (goneSeconds 10)');
      assert.ok(held <= Math.max(1, down.snapshotted - W), `t3 (down, snapshot ${down.snapshotted}) holds the trim: first kept ${held}`);

      // Once gone, the trim passes it: t3 is down past what the stream keeps.
      await waitFor('the stream trimmed past t3', async () => (await firstKept(r)) > down.applied, 40_000);
      await n3.start();
      assert.match(n3.server!.output(), /installed the published snapshot/);
      // And a new node with an empty folder joins the trimmed stream the same way.
      await using n4 = await Node.start('t4', redis.url, options);
      assert.match(n4.server!.output(), /installed the published snapshot/);
      const state = await agreedState([n1.url, n2.url, n3.url, n4.url]);
      assert.equal(state.counters.a, 300);
      await writer.close();
    } finally {
      r.disconnect();
    }
  });
});

describe('cluster operations: a node counted gone while it still runs (issue #14)', { skip: redisSkip }, () => {
  const W = 20;
  const options: NodeOptions = { args: ['--snapshot-seconds', '0.3'], env: { LEXICONS_CLUSTER_WINDOW: String(W), LEXICONS_CLUSTER_GONE_SECONDS: '3' } };

  it('a paused node the stream was trimmed past stops applying (behind), refuses writes, and rejoins when restarted', async () => {
    await using redis = await RedisServer.start();
    const r = new Redis(redis.url);
    try {
      await using n1 = await Node.start('p1', redis.url, options);
      await using n2 = await Node.start('p2', redis.url, options);
      const writer = await TestClient.connect(n1.url);
      const calls = Array.from({ length: 60 }, () => ({ Increment: { key: 'p' } }));
      assert.deepEqual(await drive(writer, calls), { acknowledged: 60, failed: [] });
      let acknowledged = 60;
      // A partition, as the cluster sees it: p2 stops (SIGSTOP) and counts as gone after 3 s.
      const pid = n2.server!.child.pid!;
      process.kill(pid, 'SIGSTOP');
      // p2 applied at most the stream's last record now (its registry entry may be a heartbeat older).
      const [lastEntry] = (await r.xrevrange('lexicons:commits', '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      const paused = { applied: Math.max((await registry(r)).p2!.applied, lastEntry === undefined ? 0 : Number(lastEntry[0].split('-')[1])) };
      try {
        await waitFor('the stream trimmed past the paused node', async () => {
          const more = await drive(writer, calls.slice(0, 10));
          assert.deepEqual(more.failed, []);
          acknowledged += more.acknowledged;
          return (await firstKept(r)) > paused.applied + 1;
        }, 60_000);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await waitFor('p2 says it is behind', async () => (await n2.health()).cluster.phase === 'behind', 30_000);
      await using late = await TestClient.connect(n2.url);
      const [reply] = (await late.call({ Increment: { key: 'p' } }, 15_000)) as [Record<string, unknown>];
      assert.match(JSON.stringify(reply), /Not saved: cluster: .*fell behind the trimmed stream/);
      await late.close();
      // A node that is behind does not hold the trim; restarted, it rejoins from the snapshot.
      assert.deepEqual(await n2.server!.stop('SIGTERM'), { code: 0, signal: null });
      await n2.start();
      assert.match(n2.server!.output(), /installed the published snapshot/);
      const state = await agreedState([n1.url, n2.url]);
      assert.equal(state.counters.p, acknowledged);
      await writer.close();
    } finally {
      r.disconnect();
    }
  });
});

describe('cluster operations: the task lease and live queries across nodes (issue #14)', { skip: redisSkip }, () => {
  let redis: RedisServer;
  let nodes: Node[] = [];
  const options: NodeOptions = { env: { TICK_SECONDS: '0.2' } };

  before(async () => {
    redis = await RedisServer.start();
    nodes = [await Node.start('l1', redis.url, options), await Node.start('l2', redis.url, options)];
  });

  after(async () => {
    for (const node of nodes) await node[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  });

  it('a live query on one node sees a commit made on the other', async () => {
    await using watcher = await TestClient.connect(nodes[1]!.url, { protocols: 'lexicons.v1' });
    watcher.send({ $connect: {} });
    await watcher.next();
    watcher.send({ $live: { id: 'c', name: 'Counters', args: {} } });
    const first = JSON.stringify(await watcher.next(10_000));
    assert.match(first, /"\$live":\{"id":"c","at":\d+,"rows":\[/);
    assert.doesNotMatch(first, /"live-key"/);
    await using writer = await TestClient.connect(nodes[0]!.url);
    assert.deepEqual(await writer.call({ Increment: { key: 'live-key' } }, 15_000), [{ Incremented: { key: 'live-key' } }]);
    for (;;) {
      const frame = JSON.stringify(await watcher.next(10_000));
      if (!frame.includes('"$live"')) continue;
      assert.match(frame, /"changes":\{"inserted":\[\{"pk":"[^"]+","key":"live-key","n":1\}\]/);
      break;
    }
  });

  it('interval tasks run on the lease holder only (unless everyNode); the lease passes on when it stops', async () => {
    type Ticks = { pid: number; runs: { Tick: Record<string, number>; NodeTick: Record<string, number> } };
    const ticks = async (node: Node): Promise<Ticks> => {
      await using client = await TestClient.connect(node.url);
      const [frame] = (await client.call({ Ticks: {} }, 15_000)) as [{ Ticks: Ticks }];
      return frame.Ticks;
    };
    const sum = (runs: Record<string, number>): number => Object.values(runs).reduce((a, b) => a + b, 0);
    await waitFor('both nodes ran NodeTick and the holder Tick', async () => {
      const { runs } = await ticks(nodes[0]!);
      return Object.keys(runs.NodeTick).length === 2 && Object.values(runs.NodeTick).every((n) => n >= 3) && sum(runs.Tick) >= 10;
    }, 30_000);
    const [a, b] = await Promise.all(nodes.map((n) => ticks(n)));
    const holders = Object.keys(b!.runs.Tick);
    assert.equal(holders.length, 1, `Tick ran on one node: ${JSON.stringify(b!.runs.Tick)}`);
    const holder = nodes[a!.pid === Number(holders[0]) ? 0 : 1]!;
    const other = nodes[a!.pid === Number(holders[0]) ? 1 : 0]!;
    const otherPid = String(a!.pid === Number(holders[0]) ? b!.pid : a!.pid);
    const health = await holder.health();
    assert.equal(health.cluster.leader, true);
    assert.equal((await other.health()).cluster.leader, false);
    // A graceful stop gives the lease up: the other node takes it at its next heartbeat.
    assert.deepEqual(await holder.server!.stop('SIGTERM'), { code: 0, signal: null });
    await waitFor('the other node runs Tick', async () => ((await ticks(other)).runs.Tick[otherPid] ?? 0) >= 3, 30_000);
    assert.equal((await other.health()).cluster.leader, true);
  });
});
