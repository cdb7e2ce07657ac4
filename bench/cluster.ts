/**
 * Cluster mode's cost (issue #14, docs/cluster.md), same run, same machine: chat on 1 node
 * without Redis against 2 nodes on one Redis (clients spread over the nodes), closed loop: every
 * sender keeps one `Say` in flight (a row and a history publication), every client of the room
 * counts what it receives. Reports delivered msgs/s and the commit latency a sender sees (send to
 * acknowledgement: p50/p99), and the ratios. On one 2-core machine this shows the cost of the
 * stream round trip, not scaling (the nodes and Redis share the cores).
 *
 *   npm run build && node dist/bench/cluster.js [--duration S] [--clients N] [--senders M]
 *
 * Writes bench/results/cluster.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TestClient } from '../test/helpers/client.js';
import { RedisServer, redisSkip } from '../test/helpers/redis.js';
import { fixture, ROOT, spawnCli, type CliServer } from '../test/helpers/server.js';
import { tempDir } from '../test/helpers/temp-dir.js';

interface Figures {
  system: string;
  nodes: number;
  deliveredPerSecond: number;
  sendsPerSecond: number;
  commitP50Ms: number;
  commitP99Ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runChat(system: string, urls: readonly string[], clients: number, senders: number, durationMs: number): Promise<Figures> {
  const all = await Promise.all(Array.from({ length: clients }, (_, i) => TestClient.connect(urls[i % urls.length]!)));
  for (const client of all) await client.call({ Join: { channel: 'Room' } });
  let delivered = 0;
  for (const client of all) client.ws.on('message', (data) => (delivered += (String(data).match(/"Chat":/g) ?? []).length));
  const latencies: number[] = [];
  let stop = false;
  const started = performance.now();
  const send = async (s: number): Promise<void> => {
    const own = await TestClient.connect(urls[s % urls.length]!);
    for (let seq = 0; !stop; seq++) {
      const t0 = performance.now();
      await own.call({ Say: { channel: 'Room', from: `s${s}`, seq } }, 30_000);
      latencies.push(performance.now() - t0);
    }
    await own.close();
  };
  const done = Promise.all(Array.from({ length: senders }, (_, s) => send(s)));
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  stop = true;
  const seconds = (performance.now() - started) / 1000;
  const deliveredNow = delivered;
  await done;
  await Promise.all(all.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  return {
    system,
    nodes: urls.length,
    deliveredPerSecond: Math.round(deliveredNow / seconds),
    sendsPerSecond: Math.round(latencies.length / seconds),
    commitP50Ms: Number(percentile(latencies, 50).toFixed(2)),
    commitP99Ms: Number(percentile(latencies, 99).toFixed(2)),
  };
}

async function startNodes(count: number, redis: string | null): Promise<{ urls: string[]; stop: () => Promise<void> }> {
  const servers: CliServer[] = [];
  const folders = await Promise.all(Array.from({ length: count }, () => tempDir('lexicons-bench-cluster-')));
  for (let i = 0; i < count; i++) {
    const cluster = redis === null ? [] : ['--redis', redis, '--node-id', `b${i + 1}`];
    servers.push(await spawnCli([fixture('cluster-app'), '--workers', '1', '--port', '0', '--host', '127.0.0.1', '--data', folders[i]!.path, ...cluster], { timeoutMs: 60_000 }));
  }
  return {
    urls: servers.map((s) => s.url),
    stop: async () => {
      for (const s of servers) await s.stop();
      for (const f of folders) await f[Symbol.asyncDispose]();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { duration: { type: 'string' }, clients: { type: 'string' }, senders: { type: 'string' } } });
  const durationMs = Number(values.duration ?? 10) * 1000;
  const clients = Number(values.clients ?? 40);
  const senders = Number(values.senders ?? 8);
  if (redisSkip) throw new Error(`bench/cluster: ${redisSkip}`);
  const results: Figures[] = [];
  const single = await startNodes(1, null);
  try {
    results.push(await runChat('1 node, no Redis', single.urls, clients, senders, durationMs));
  } finally {
    await single.stop();
  }
  await using redis = await RedisServer.start();
  const pair = await startNodes(2, redis.url);
  try {
    results.push(await runChat('2 nodes on Redis', pair.urls, clients, senders, durationMs));
  } finally {
    await pair.stop();
  }
  const [one, two] = results as [Figures, Figures];
  const ratios = { delivered: Number((two.deliveredPerSecond / one.deliveredPerSecond).toFixed(2)), commitP50: Number((two.commitP50Ms / one.commitP50Ms).toFixed(2)) };
  console.table(results);
  console.log(`2 nodes / 1 node: delivered x${ratios.delivered}, commit p50 x${ratios.commitP50} (one machine: cost, not scaling)`);
  const out = join(ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'cluster.json'), `${JSON.stringify({ date: new Date().toISOString(), durationMs, clients, senders, results, ratios }, null, 2)}\n`);
}

await main();
