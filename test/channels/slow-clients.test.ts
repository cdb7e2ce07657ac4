/**
 * Slow subscribers against the real server (channels-app: `limits.maxBackpressureBytes` 256 KiB),
 * with raw lexicons.v1 sockets that stop reading (their TCP socket paused) while a publisher
 * bursts 16 KiB items into their channel:
 *
 * - `slowClient: 'drop'` (Dropping): the subscriber stays connected, uWS's buffered bytes for it
 *   (read from the admin overview after every burst) never exceed the limit, and once it reads
 *   again it sees the gap in `$off`, sends `$recover` and ends up with every offset exactly once,
 *   in order (duplicates after the gap skipped, as the client library does);
 * - `slowClient: 'disconnect'` (Strict): the subscriber is closed (4008 when the close frame can
 *   still be queued, else 1006: both mean "reconnect and recover"), its buffered bytes stayed
 *   bounded, and reconnecting with its position recovers what it missed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { fixture, suiteApp } from '../helpers/server.js';
import { assertRun, guest, joinChannel, type ConnectFrame, type Item, type V1Socket } from './raw.js';

const TOKEN = 'slow-clients-admin-token';
const LIMIT = 256 * 1024;
const open: V1Socket[] = [];
let nextId = 1;

// Terminated, not closed: a paused socket would never finish a close handshake.
after(() => open.forEach((s) => s.socket.ws.terminate()));
const srv = suiteApp(fixture('channels-app'), { workers: 2, overrides: { adminTrust: [], adminToken: TOKEN } });

const client = (name: string, extra?: ConnectFrame): Promise<V1Socket> => guest(srv.url, open, name, extra);

/** uWS's buffered bytes of a connection (admin overview), or undefined once it is gone. */
async function buffered(id: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${srv.port}/admin/api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { connections: { listed: Array<{ id: string; bufferedBytes: number }> } };
  return body.connections.listed.find((c) => c.id === id)?.bufferedBytes;
}

/** The paused TCP socket of a raw client. */
function tcp(socket: V1Socket): { pause(): void; resume(): void } {
  return (socket.socket.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
}

/** Resolves when the server answered a ping (after everything it had buffered for the socket). */
function pong(socket: V1Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.socket.ws.once('pong', () => resolve());
    socket.socket.ws.ping();
  });
}

const join = (socket: V1Socket, channel: string): Promise<Item> => joinChannel(socket, channel, nextId++);

/**
 * What a client delivers from what it received, as the client library does: per channel, an
 * item goes through when its offset is position + 1; an older one is a duplicate (skipped); a
 * newer one is a gap (skipped; `onGap` asks to `$recover` from the position, once per position).
 */
function deliver(items: readonly Item[], channel: string, start: number, onGap: (position: number) => void): number[] {
  const out: number[] = [];
  let position = start;
  let asked = -1;
  for (const item of items) {
    const offset = item.$off?.[channel] as number | undefined;
    if (offset === undefined) continue;
    if (offset === position + 1) {
      out.push(offset);
      position = offset;
    } else if (offset > position + 1 && asked !== position) {
      asked = position;
      onGap(position);
    }
  }
  return out;
}

/** A member of `channel` that stopped reading (its TCP socket paused), and a publisher. */
async function slowMember(channel: string): Promise<{ slow: V1Socket; sub: Item; start: number; publisher: V1Socket }> {
  const slow = await client(`slow-${channel}`);
  const sub = await join(slow, channel);
  const publisher = await client(`pub-${channel}`);
  tcp(slow).pause();
  return { slow, sub, start: sub.offset as number, publisher };
}

describe('slow clients', () => {
  it("'drop': the slow member stays connected, its buffered bytes stay within the limit (plus one frame), and it recovers the dropped items with $recover", async () => {
    const { slow, sub, start, publisher } = await slowMember('Dropping');
    let peak = 0;
    let bursts = 0;
    let slowSince = -1;
    // 4 items of 16 KiB a burst (a 64 KiB frame), until uWS holds over half the limit for the
    // slow member (the kernel's socket buffers fill first), then 8 more: those are dropped.
    for (; bursts < 400 && (slowSince < 0 || bursts < slowSince + 8); bursts++) {
      await publisher.call('Burst', { channel: 'Dropping', n: 4, size: 16 * 1024 }, nextId++);
      const now = await buffered(slow.connected.id);
      assert.notEqual(now, undefined, `the slow member was disconnected after ${bursts + 1} bursts`);
      peak = Math.max(peak, now!);
      if (slowSince < 0 && peak > LIMIT / 2) slowSince = bursts;
    }
    const total = bursts * 4;
    assert.ok(peak > LIMIT / 2, `uWS buffered ${peak} B at most: the socket never got slow`);
    // uWS's rule: a send goes while the buffer is within the limit, so at most one frame beyond it.
    assert.ok(peak <= LIMIT + 64 * 1024 + 4096, `uWS buffered ${peak} B for the slow member (limit ${LIMIT})`);
    process.stdout.write(`# drop policy: ${total} items of 16 KiB published; slow member's uWS buffer peaked at ${peak} B (limit ${LIMIT})\n`);
    tcp(slow).resume();
    // Until uWS sent it all (polled after round trips of the publisher; bounded), then a pong
    // (dropped while over the limit, so only asked for now) comes after what the kernel held.
    for (let i = 0; i < 200 && (await buffered(slow.connected.id)) !== 0; i++) await publisher.call('Whoami', {}, nextId++);
    await pong(slow);
    const kept = slow.items.filter((i) => i.$off?.Dropping !== undefined).length;
    assert.ok(kept < total, `${kept} of ${total} items reached the slow member: none was dropped`);
    // The next publication shows the slow member the gap, as it would in an app.
    await publisher.call('Burst', { channel: 'Dropping', n: 4, size: 16 * 1024 }, nextId++);
    const end = start + total + 4;
    await slow.until((i) => i.$off?.Dropping === end);
    // It asks for the gap once; the answer (paced by the socket) completes the run.
    deliver(slow.items, 'Dropping', start, (position) => slow.socket.send({ $recover: { Dropping: { epoch: sub.epoch, offset: position } } }));
    const answer = (await slow.until((i) => i.$subscribed?.channel === 'Dropping' && i.$subscribed.recovering === true, 30_000)).$subscribed as Item;
    assert.deepEqual([answer.recovered, answer.offset], [true, end]);
    await slow.until(() => deliver(slow.items, 'Dropping', start, () => {}).at(-1) === end, 30_000);
    assertRun(deliver(slow.items, 'Dropping', start, () => {}), start + 1, end, 'delivered after recovery');
  });

  it("'disconnect': the slow member is closed (4008, or 1006 when no close frame fits), its buffer bounded; reconnecting with its position recovers", async () => {
    const { slow, sub, start, publisher } = await slowMember('Strict');
    let peak = 0;
    let bursts = 0;
    for (; bursts < 60; bursts++) {
      await publisher.call('Burst', { channel: 'Strict', n: 16, size: 16 * 1024 }, nextId++);
      const now = await buffered(slow.connected.id);
      if (now === undefined) break;
      peak = Math.max(peak, now);
    }
    assert.ok(bursts < 60, 'the slow member was not disconnected');
    const end = start + (bursts + 1) * 16;
    // uWS holds at most one frame beyond the limit before it refuses the next (a burst frame is 256 KiB + framing).
    assert.ok(peak <= 2 * LIMIT + 4096, `uWS buffered ${peak} B for the slow member (limit ${LIMIT})`);
    tcp(slow).resume();
    const closed = await slow.socket.waitClosed(30_000);
    process.stdout.write(`# disconnect policy: closed with ${closed.code} after ${(bursts + 1) * 16} items; uWS buffer peaked at ${peak} B\n`);
    assert.ok([4008, 1006].includes(closed.code), `close code ${closed.code}`);
    const back = await client('slow-Strict', { positions: { Strict: { epoch: sub.epoch as string, offset: start } } });
    const s = await join(back, 'Strict');
    assert.deepEqual([s.recovered, s.recovering, s.offset], [true, true, end]);
    await back.until((i) => i.$off?.Strict === end, 30_000); // the rest of the recovery, paced by the socket
    assertRun(deliver(back.items, 'Strict', start, () => {}), start + 1, end);
    assertRun(back.items.filter((i) => i.$off?.Strict !== undefined).map((i) => i.$off.Strict as number), start + 1, end, 'received (no duplicate)');
  });
});
