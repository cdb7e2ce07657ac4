/**
 * @module bench/client
 * Echo calls/s through the client library (`lexicons/client` in Node with the `ws` package)
 * against a raw-frame client on the same server, in the same run: is the library the reason an
 * app is slow? One lexicons server (`dist/bench/app/main.js --workers 1`), then rounds that
 * alternate the two clients (interleaved, median kept), both in this process, both over `ws`:
 *
 * - `raw-frames`: hand-written: C connections, W calls in flight each; every reply frame is
 *   `JSON.parse`d, and as many new calls go out at once in one list frame. Its calls carry `$id`
 *   too, so the server does the same work for both clients (tagging, one reply frame per frame).
 * - `client`: C `createClient` instances, W concurrent `await client.call('Echo', {n})` loops
 *   each (the library batches the calls issued in one tick into list frames, correlates replies
 *   by `$id`, runs a timeout per call).
 *
 * Writes bench/results/client.json (calls/s of each, the ratio client / raw-frames).
 *
 * Usage: node dist/bench/client.js [--quick] [--seconds S] [--rounds N] [--connections C] [--window W] [--out DIR]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { createClient, type Client } from '../src/client/index.js';
import { gitCommit, machineInfo, writeJson } from './loadgen/report.js';
import { startSystem } from './loadgen/servers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench -> repo root

interface Load {
  /** Calls completed so far. */
  readonly done: () => number;
  stop(): Promise<void>;
}

function credentials(who: string): Record<string, string> {
  return { email: `${who}@bench.example`, password: 'bench password' };
}

/** The hand-written client: C sockets, W calls in flight each, replies counted from parsed frames. */
async function rawFrames(url: string, connections: number, window: number, tag: string): Promise<Load> {
  let done = 0;
  let running = true;
  const sockets = await Promise.all(
    Array.from({ length: connections }, (_, c) => {
      const query = new URLSearchParams({ Register: JSON.stringify(credentials(`raw-${tag}-${c}`)) });
      const ws = new WebSocket(`${url}/?${query}`);
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('error', reject);
        ws.once('message', () => resolve(ws)); // the Register item: admitted
      });
    }),
  );
  for (const ws of sockets) {
    let id = 0;
    const send = (count: number) => {
      let frame = '[';
      for (let i = 0; i < count; i++) frame += `${i > 0 ? ',' : ''}{"Echo":{"n":${id}},"$id":${id++}}`;
      ws.send(`${frame}]`);
    };
    ws.on('message', (data) => {
      const items = JSON.parse(data.toString()) as unknown[];
      done += items.length;
      if (running) send(items.length);
    });
    send(window);
  }
  return {
    done: () => done,
    async stop() {
      running = false;
      await Promise.all(sockets.map((ws) => new Promise((resolve) => (ws.once('close', resolve), ws.close()))));
    },
  };
}

/** The library: C clients, W concurrent call loops each. */
async function library(url: string, connections: number, window: number, tag: string): Promise<Load> {
  let done = 0;
  let running = true;
  const clients: Client[] = Array.from({ length: connections }, (_, c) => createClient({ url, WebSocket, headers: { Register: credentials(`client-${tag}-${c}`) } }));
  await Promise.all(clients.map((client) => client.call('Echo', { warm: true })));
  const loops: Array<Promise<void>> = [];
  for (const client of clients) {
    for (let w = 0; w < window; w++) {
      loops.push(
        (async () => {
          let n = 0;
          while (running) {
            await client.call('Echo', { n: n++ });
            done++;
          }
        })(),
      );
    }
  }
  return {
    done: () => done,
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const client of clients) client.close();
    },
  };
}

async function measure(start: () => Promise<Load>, warmupMs: number, seconds: number): Promise<number> {
  const load = await start();
  await new Promise((resolve) => setTimeout(resolve, warmupMs));
  const from = load.done();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const calls = load.done() - from;
  const elapsed = (performance.now() - t0) / 1000;
  await load.stop();
  return calls / elapsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      window: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const seconds = values.seconds !== undefined ? Number(values.seconds) : values.quick ? 2 : 10;
  const rounds = values.rounds !== undefined ? Number(values.rounds) : values.quick ? 2 : 3;
  const connections = values.connections !== undefined ? Number(values.connections) : 8;
  const window = values.window !== undefined ? Number(values.window) : 64;
  const warmupMs = values.quick ? 500 : 2000;
  for (const [name, v] of Object.entries({ seconds, rounds, connections, window })) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'lexicons-bench-client-'));
  const server = await startSystem('lexicons-w1', { rows: 0, channels: 1, users: 0, hash: 'scrypt', dataDir, startTimeoutMs: 30_000 });
  const url = `ws://127.0.0.1:${server.port}`;
  const raw: number[] = [];
  const lib: number[] = [];
  const load = loadavg()[0]!;
  try {
    for (let r = 0; r < rounds; r++) {
      raw.push(await measure(() => rawFrames(url, connections, window, String(r)), warmupMs, seconds));
      lib.push(await measure(() => library(url, connections, window, String(r)), warmupMs, seconds));
      console.log(`round ${r + 1}: raw-frames ${Math.round(raw[r]!)} calls/s, client ${Math.round(lib[r]!)} calls/s`);
    }
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  const figures = {
    'raw-frames': { calls_per_s: Math.round(median(raw)), rounds: raw.map(Math.round) },
    client: { calls_per_s: Math.round(median(lib)), rounds: lib.map(Math.round) },
  };
  const ratio = Math.round((figures.client.calls_per_s / figures['raw-frames'].calls_per_s) * 1000) / 1000;
  const results = {
    workload: 'client',
    date: new Date().toISOString(),
    commit: gitCommit(ROOT),
    mode: values.quick ? 'quick' : 'full',
    machine: machineInfo(),
    config: { server: 'lexicons --workers 1 (dist/bench/app/main.js)', connections, window, seconds, rounds, warmupMs },
    headline: 'calls_per_s',
    labels: { 'raw-frames': 'raw frames over ws', client: 'lexicons/client over ws' },
    figures,
    ratios: { 'client / raw-frames': ratio },
    notes: [
      `Echo calls/s, ${connections} connections x ${window} calls in flight, both clients in one Node process over the ws package, rounds interleaved, median kept.`,
      `Load average at the start: ${load.toFixed(1)} (figures from a loaded machine are noisy).`,
    ],
  };
  const outDir = values.out ?? join(ROOT, 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  const path = await writeJson(outDir, 'client', results);
  console.log(`client / raw-frames = ${ratio} -> ${path}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
