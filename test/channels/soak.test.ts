/**
 * The soak test of "channels that remember": a spawned CLI server (channels-app, 2 workers) and
 * the real lexicons/client in Node. A writer publishes 10,000 items on the history channel
 * `Public` in batched calls while the reader's socket is destroyed 20 times at random moments
 * (seeded PRNG: the seed is printed, a failing run replays with LEXICONS_SOAK_SEED); then the
 * server is stopped (SIGTERM) and, later, killed (SIGKILL) while the reader is offline and behind,
 * and restarted on the same data folder. The reader's app must see every offset exactly
 * once, in order, and never a `stale` channel.
 *
 * The writer stays at most WINDOW publications ahead of what the reader delivered, so a drop never
 * misses more than `limits.maxRecoveredPublications` (1000) and recovery is always possible.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createClient, type ChannelEvent, type Client } from '../../src/client/index.js';
import { prng } from '../helpers/prng.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { fixture, spawnCli, type CliServer } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

const SOAK = 10_000;
const DROPS = 20;
const BATCH = 250; // calls issued in one tick: the client sends them as a few list frames
const WINDOW = 500;
const AROUND_RESTART = 300; // published while the reader is offline, before each restart and after it

const seed = Number(process.env.LEXICONS_SOAK_SEED ?? Date.now() % 1_000_000);
console.log(`# soak seed ${seed} (LEXICONS_SOAK_SEED=${seed} replays it)`);
const random = prng(seed);

let data: TempDir | undefined;
let srv: CliServer | undefined;
let relay: Relay | undefined;
const clients: Client[] = [];
after(async () => {
  clients.forEach((c) => c.close());
  await relay?.close();
  await srv?.stop('SIGKILL');
  await data?.[Symbol.asyncDispose]();
});

async function start(): Promise<CliServer> {
  return spawnCli([fixture('channels-app'), '--workers', '2', '--host', '127.0.0.1', '--port', '0', '--data', data!.path]);
}

/** The reader: its sockets (to destroy them), a gate that keeps it offline, what its app got. */
function reader(url: string) {
  const sockets: WebSocket[] = [];
  const gate = { offline: false };
  class Tracked extends WebSocket {
    constructor(target: string, protocols?: string | string[]) {
      // Offline: connect to a port nobody listens on (port 1 is refused), so the client backs off and retries.
      super(gate.offline ? 'ws://127.0.0.1:1/' : target, protocols);
      sockets.push(this);
    }
  }
  const client = createClient({ url, WebSocket: Tracked as never, headers: { Guest: { name: 'reader' } }, reconnect: { baseDelayMs: 10, maxDelayMs: 50 } });
  clients.push(client);
  const offsets: number[] = [];
  const events: ChannelEvent[] = [];
  const watchers = new Set<() => void>();
  client.onChannel((e) => events.push(e));
  client.on('Post', (_payload, item) => {
    offsets.push((item.$off as Record<string, number>).Public!);
    watchers.forEach((w) => w());
  });
  /** Resolves once the app has delivered `offset` (checked at every item), bounded in time. */
  const reached = (offset: number, timeoutMs = 60_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = () => offsets.length > 0 && offsets.at(-1)! >= offset;
      if (done()) return resolve();
      const timer = setTimeout(() => {
        watchers.delete(watch);
        reject(new Error(`reader at ${offsets.at(-1)} (${offsets.length} items), not ${offset}, within ${timeoutMs} ms; seed ${seed}`));
      }, timeoutMs);
      const watch = () => {
        if (!done()) return;
        clearTimeout(timer);
        watchers.delete(watch);
        resolve();
      };
      watchers.add(watch);
    });
  /** Destroys the current socket: no close frame, the server sees 1006. */
  const destroy = () => sockets.at(-1)?.terminate();
  return { client, offsets, events, watchers, gate, reached, destroy };
}

describe('soak: channels that remember', { timeout: 300_000 }, () => {
  it(`${SOAK} publications, ${DROPS} destroyed sockets, a restart and a kill -9: every offset once, in order`, async () => {
    data = await tempDir('lexicons-soak-');
    srv = await start();
    relay = await startRelay(srv.port);
    const url = `ws://127.0.0.1:${relay.port}/`;
    const r = reader(url);
    await r.client.call('Join', { channel: 'Public' }, { replay: true });
    const writer = createClient({ url, WebSocket, headers: { Guest: { name: 'writer' } }, reconnect: { baseDelayMs: 10, maxDelayMs: 50 } });
    clients.push(writer);
    let published = 0;
    const publish = async (n: number) => {
      const calls = Array.from({ length: n }, () => writer.call('Post', { channel: 'Public', text: `p${published++}` }));
      await Promise.all(calls);
    };

    // 20 random moments: when the reader's app has delivered these offsets, its socket is destroyed.
    const moments = Array.from({ length: DROPS }, () => 1 + Math.floor(random() * (SOAK - 1))).sort((a, b) => a - b);
    let next = 0;
    const dropper = () => {
      while (next < moments.length && r.offsets.at(-1)! >= moments[next]!) {
        next++;
        setImmediate(r.destroy); // after this item's handlers: a destroy mid-frame or mid-recovery
      }
    };
    r.watchers.add(dropper);
    const t0 = performance.now();
    while (published < SOAK) {
      if (published - (r.offsets.at(-1) ?? 0) > WINDOW) await r.reached(published - WINDOW);
      await publish(Math.min(BATCH, SOAK - published));
    }
    await r.reached(SOAK);
    r.watchers.delete(dropper);
    assert.equal(next, DROPS, 'every drop happened');
    const reconnects = r.client.positions.Public;
    console.log(`# soak: ${SOAK} publications, ${DROPS} drops in ${Math.round(performance.now() - t0)} ms`);
    assert.equal(reconnects?.offset, SOAK);

    // A restart (SIGTERM), then a kill -9: each time the reader is offline and AROUND_RESTART behind.
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      r.gate.offline = true;
      r.destroy();
      await publish(AROUND_RESTART);
      const exit = await srv.stop(signal);
      console.log(`# soak: ${signal} ${JSON.stringify(exit)}`);
      assert.equal(exit.signal === 'SIGKILL' || exit.code === 0, true, `${signal}: ${JSON.stringify(exit)}`);
      srv = await start();
      relay.target = srv.port;
      r.gate.offline = false;
      await publish(AROUND_RESTART);
      await r.reached(published);
    }

    const total = SOAK + 4 * AROUND_RESTART;
    assert.equal(published, total);
    assert.equal(r.offsets.length, total, 'no duplicate, no loss');
    r.offsets.forEach((offset, k) => assert.equal(offset, k + 1, `item ${k}: offset ${offset}; seed ${seed}`));
    assert.deepEqual(r.events.filter((e) => e.type === 'stale'), [], 'never stale');
    const recovered = r.events.filter((e) => e.type === 'subscribed' && e.wasRecovering && e.recovered).length;
    // A destroy can hit a socket still connecting (no join then): at least the two restarts recovered.
    assert.ok(recovered >= 2, `recovered after the restarts (${recovered} recoveries)`);
    console.log(`# soak: ${recovered} recoveries, ${total} offsets once, in order`);
  });
});
