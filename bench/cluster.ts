/**
 * Cluster mode's cost (issue #14, docs/cluster.md), same run, same machine: 1 node without Redis
 * against 2 nodes on one Redis (clients spread over the nodes), closed loops, two workloads:
 *
 * - `chat`: every sender keeps one `Say` in flight (a row and a history publication), every client
 *   of the room counts what it receives: delivered msgs/s, sends/s, commit latency (p50/p99);
 * - `transfers`: bank transfers between `--accounts` accounts (a read of two rows, two updates:
 *   high contention, conflicts re-run), `--senders` clients keeping one in flight each:
 *   transfers/s and latency.
 *
 * On one 2-core machine this shows the cost of the stream round trip, not scaling (the nodes and
 * Redis share the cores). The app is bench/app/cluster.ts (the cluster tests' app too).
 *
 *   npm run build && node dist/bench/cluster.js [--warmup S] [--duration S] [--clients N] [--senders M] [--accounts A] [--workload chat|transfers|all]
 *
 * Writes bench/results/cluster.json.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { RedisServer, redisSkip } from './loadgen/redis-server.js';
import { lexiconsPaths } from './loadgen/servers.js';

const APP = fileURLToPath(new URL('./app/cluster.js', import.meta.url));

interface Figures {
  workload: 'chat' | 'transfers';
  system: string;
  nodes: number;
  /** chat: publications delivered to clients per second; transfers: 0. */
  deliveredPerSecond: number;
  /** Calls answered per second (sends or transfers). */
  callsPerSecond: number;
  commitP50Ms: number;
  commitP99Ms: number;
  /** CPU time of the node processes (and redis-server) during the run, per call answered: what a call costs the servers. */
  serverCpuMsPerCall: number;
}

/** CPU seconds (user + system) a process has used so far, from /proc (0 once it is gone). */
function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
  } catch {
    return 0;
  }
}

/** The servers of a run: the nodes' URLs and the pids whose CPU counts (nodes, redis-server). */
interface Servers {
  urls: readonly string[];
  pids: readonly number[];
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A WebSocket client of the app's default protocol: one call in flight, its reply is the next frame. */
class Peer {
  readonly ws: WebSocket;
  #reply: ((text: string) => void) | null = null;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const resolve = this.#reply;
      this.#reply = null;
      resolve?.(String(data));
    });
  }

  static async connect(url: string): Promise<Peer> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Peer(ws);
  }

  /** Sends `call` and resolves with the next frame (the reply; frames of channels are not awaited with it). */
  call(call: unknown): Promise<string> {
    return new Promise((resolve) => {
      this.#reply = resolve;
      this.ws.send(JSON.stringify(call));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** How long a run goes before it is measured (`--warmup`): V8 optimizes the hot paths meanwhile. */
let warmupMs = 3000;

/**
 * Runs `loop(i)` for `count` callers for {@link warmupMs} (not measured; `measuring` is called at
 * its end), then `durationMs`: the call latencies of the measured part, sorted, its seconds, and
 * the servers' CPU seconds in it.
 */
async function closedLoop(pids: readonly number[], count: number, durationMs: number, loop: (i: number, stopped: () => boolean, latencies: number[]) => Promise<void>, measuring: () => void = () => undefined): Promise<{ latencies: number[]; seconds: number; cpuSeconds: number }> {
  const latencies: number[] = [];
  let stop = false;
  const cpu = (): number => pids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  const done = Promise.all(Array.from({ length: count }, (_, i) => loop(i, () => stop, latencies)));
  await new Promise((resolve) => setTimeout(resolve, warmupMs));
  measuring();
  const from = latencies.length;
  const cpu0 = cpu();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  stop = true;
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpu() - cpu0;
  const measured = latencies.length;
  await done;
  return { latencies: latencies.slice(from, measured).sort((a, b) => a - b), seconds, cpuSeconds };
}

function figures(workload: Figures['workload'], system: string, nodes: number, run: { latencies: number[]; seconds: number; cpuSeconds: number }, delivered = 0): Figures {
  return {
    workload,
    system,
    nodes,
    deliveredPerSecond: Math.round(delivered / run.seconds),
    callsPerSecond: Math.round(run.latencies.length / run.seconds),
    commitP50Ms: Number(percentile(run.latencies, 50).toFixed(2)),
    commitP99Ms: Number(percentile(run.latencies, 99).toFixed(2)),
    serverCpuMsPerCall: Number(((run.cpuSeconds * 1000) / Math.max(1, run.latencies.length)).toFixed(3)),
  };
}

async function runChat(system: string, { urls, pids }: Servers, clients: number, senders: number, durationMs: number): Promise<Figures> {
  const all = await Promise.all(Array.from({ length: clients }, (_, i) => Peer.connect(urls[i % urls.length]!)));
  for (const client of all) await client.call({ Join: { channel: 'Room' } });
  let delivered = 0;
  let counting = true;
  for (const client of all) client.ws.on('message', (data) => counting && (delivered += (String(data).match(/"Chat":/g) ?? []).length));
  const run = await closedLoop(pids, senders, durationMs, async (s, stopped, latencies) => {
    const own = await Peer.connect(urls[s % urls.length]!);
    for (let seq = 0; !stopped(); seq++) {
      const t0 = performance.now();
      await own.call({ Say: { channel: 'Room', from: `s${s}`, seq } });
      latencies.push(performance.now() - t0);
    }
    own.close();
  }, () => (delivered = 0));
  counting = false;
  all.forEach((c) => c.close());
  return figures('chat', system, urls.length, run, delivered);
}

async function runTransfers(system: string, { urls, pids }: Servers, clients: number, accounts: number, durationMs: number): Promise<Figures> {
  const opener = await Peer.connect(urls[0]!);
  for (let i = 0; i < accounts; i++) await opener.call({ Open: { key: `a${i}`, balance: 1_000_000 } });
  opener.close();
  const run = await closedLoop(pids, clients, durationMs, async (c, stopped, latencies) => {
    const own = await Peer.connect(urls[c % urls.length]!);
    let seed = c + 1;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    while (!stopped()) {
      const t0 = performance.now();
      const reply = await own.call({ Transfer: { from: `a${random(accounts)}`, to: `a${random(accounts)}`, amount: 1 + random(100) } });
      if (!reply.includes('"Transferred"')) throw new Error(`transfer failed: ${reply}`);
      latencies.push(performance.now() - t0);
    }
    own.close();
  });
  return figures('transfers', system, urls.length, run);
}

/** `lexicons start` of the cluster app, resolved once its LISTEN line names the port. */
async function startNode(data: string, cluster: readonly string[]): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [lexiconsPaths().cli, 'start', APP, '--workers', '1', '--port', '0', '--host', '127.0.0.1', '--data', data, ...cluster], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LEXICONS_LOG: 'info' } });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no LISTEN within 60 s:\n${out.slice(-2000)}`)), 60_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /"status":"LISTEN".*?"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => reject(new Error(`the node exited at start:\n${out.slice(-2000)}`)));
  });
  const exited = new Promise((resolve) => child.once('close', resolve));
  return {
    url: `ws://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function startNodes(count: number, redis: string | null): Promise<{ urls: string[]; pids: number[]; stop: () => Promise<void> }> {
  const folders = await Promise.all(Array.from({ length: count }, () => mkdtemp(join(tmpdir(), 'lexicons-bench-cluster-'))));
  const nodes: Array<{ url: string; pid: number; stop: () => Promise<void> }> = [];
  for (let i = 0; i < count; i++) nodes.push(await startNode(folders[i]!, redis === null ? [] : ['--redis', redis, '--node-id', `b${i + 1}`]));
  return {
    urls: nodes.map((n) => n.url),
    pids: nodes.map((n) => n.pid),
    stop: async () => {
      for (const n of nodes) await n.stop();
      for (const f of folders) await rm(f, { recursive: true, force: true });
    },
  };
}

/** `run` on 1 node without Redis, then on 2 nodes on a fresh Redis (each on fresh data folders). */
async function oneAndTwo(run: (system: string, servers: Servers) => Promise<Figures>): Promise<[Figures, Figures]> {
  const single = await startNodes(1, null);
  let one: Figures;
  try {
    one = await run('1 node, no Redis', single);
  } finally {
    await single.stop();
  }
  await using redis = await RedisServer.start();
  const pair = await startNodes(2, redis.url);
  try {
    return [one, await run('2 nodes on Redis', { urls: pair.urls, pids: [...pair.pids, redis.pid!] })];
  } finally {
    await pair.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { warmup: { type: 'string' }, duration: { type: 'string' }, clients: { type: 'string' }, senders: { type: 'string' }, accounts: { type: 'string' }, workload: { type: 'string' } } });
  const durationMs = Number(values.duration ?? 10) * 1000;
  warmupMs = Number(values.warmup ?? 3) * 1000;
  const clients = Number(values.clients ?? 40);
  const senders = Number(values.senders ?? 8);
  const accounts = Number(values.accounts ?? 10);
  const workload = values.workload ?? 'all';
  if (redisSkip) throw new Error(`bench/cluster: ${redisSkip}`);
  const results: Figures[] = [];
  const ratios: Record<string, number> = {};
  const ratio = (name: string, [one, two]: [Figures, Figures], key: keyof Figures): void => {
    ratios[name] = Number(((two[key] as number) / (one[key] as number)).toFixed(2));
  };
  if (workload === 'all' || workload === 'chat') {
    const pair = await oneAndTwo((system, servers) => runChat(system, servers, clients, senders, durationMs));
    results.push(...pair);
    ratio('chatDelivered', pair, 'deliveredPerSecond');
    ratio('chatCommitP50', pair, 'commitP50Ms');
    ratio('chatCpuPerCall', pair, 'serverCpuMsPerCall');
  }
  if (workload === 'all' || workload === 'transfers') {
    const pair = await oneAndTwo((system, servers) => runTransfers(system, servers, senders, accounts, durationMs));
    results.push(...pair);
    ratio('transfers', pair, 'callsPerSecond');
    ratio('transfersCommitP50', pair, 'commitP50Ms');
    ratio('transfersCpuPerCall', pair, 'serverCpuMsPerCall');
  }
  console.table(results);
  console.log(`2 nodes / 1 node: ${JSON.stringify(ratios)} (one machine: cost, not scaling)`);
  const out = fileURLToPath(new URL('../../bench/results/', import.meta.url)); // dist/bench -> bench/results
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'cluster.json'), `${JSON.stringify({ date: new Date().toISOString(), warmupMs, durationMs, clients, senders, accounts, results, ratios }, null, 2)}\n`);
}

await main();
