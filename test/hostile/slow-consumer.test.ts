/**
 * A slow consumer that never reads, subscribed to a busy channel, against a spawned server (its
 * RSS measured alone): uWS buffers at most `limits.maxBackpressureBytes` for it, then drops it
 * (closeOnBackpressureLimit; no close frame); the server's memory stays bounded and the
 * publisher keeps being served.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, suiteCli } from '../helpers/server.js';
import { connectRaw, frame, MiB, OPCODE, rssOf } from './raw.js';

async function connections(port: number): Promise<number> {
  return ((await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { connections: number }).connections;
}

describe('slow consumer (spawned server)', { timeout: 60_000 }, () => {
  const srv = suiteCli((data) => [fixture('hostile-app'), '--port', '0', '--host', '127.0.0.1', '--data', data], { env: { LEXICONS_LOG: 'errors' } });

  it('drops a subscriber that never reads at maxBackpressureBytes; RSS stays bounded', async () => {
    await using publisher = await TestClient.connect(srv.url);
    assert.deepEqual(await publisher.call({ Echo: {} }), [{ Echo: {} }]);
    const slow = await connectRaw(srv.port);
    slow.write(frame(OPCODE.TEXT, '{"Join":{"channel":"Busy"}}'));
    assert.deepEqual(JSON.parse(await slow.nextText()), [{ Join: { channel: 'Busy' } }]);
    slow.socket.pause(); // never reads again: the kernel buffers fill, then uWS's
    const rssStart = await rssOf(srv.child.pid!);
    assert.equal(await connections(srv.port), 2);
    // 20 × 4 MiB published to Busy: 80 MiB, far beyond the 256 KiB limit and the socket buffers.
    let published = 0;
    let rssPeak = rssStart;
    for (let i = 0; i < 20 && (await connections(srv.port)) > 1; i++) {
      publisher.send({ Blast: { count: 64, size: 64 * 1024 } });
      assert.deepEqual(await publisher.call({ Echo: { i } }, 15_000), [{ Echo: { i } }], 'the publisher is served');
      published += 4;
      rssPeak = Math.max(rssPeak, await rssOf(srv.child.pid!));
    }
    // Dropped by the policy (bounded wait: /health polled after each event-driven round trip).
    for (let i = 0; i < 50 && (await connections(srv.port)) > 1; i++) await publisher.call({ Echo: { wait: i } });
    assert.equal(await connections(srv.port), 1, 'the slow consumer was not dropped');
    const rssEnd = await rssOf(srv.child.pid!);
    slow.socket.resume();
    const { closeCode } = await slow.waitEnded(10_000);
    assert.notEqual(closeCode, 1000);
    const grown = (Math.max(rssPeak, rssEnd) - rssStart) / MiB;
    process.stdout.write(`# slow consumer: dropped after ${published} MiB published to its channel (limit 256 KiB); server RSS ${(rssStart / MiB).toFixed(0)} → peak ${(rssPeak / MiB).toFixed(0)} MiB (bound: +200 MiB); close frame: ${closeCode ?? 'none'}\n`);
    assert.ok(grown < 200, `server RSS grew by ${grown.toFixed(0)} MiB`);
  });
});
