/**
 * A live query survives a restart of the server (issue #13: "restart of the server (subscriptions
 * come back through the client)"): the typed client holds a materialized result, the server
 * stops (its data saved) and starts again on the same folder (behind a relay: one address); the client reconnects,
 * subscribes again, gets the whole result back (rows written before the restart included) and then
 * the changes of commits made after it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createClient, type Client } from '../../src/client/index.js';
import { startRelay } from '../helpers/relay.js';
import { fixture, startApp, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';
import type { server as liveApp } from '../fixtures/apps/live-app.js';
import { nextState } from '../client/client-helpers.js';

type App = typeof liveApp;

describe('live queries across a restart of the server', { timeout: 120_000 }, () => {
  const cleanups: Array<() => PromiseLike<void> | void> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('the client subscribes again after the restart and sees rows from before and after it', async () => {
    const data = await tempDir();
    cleanups.push(() => data[Symbol.asyncDispose]());
    let srv: TestServer = await startApp(fixture('live-app'), { workers: 2, data: data.path });
    cleanups.push(() => srv.stop());
    // One address across the restart: the restarted server takes a new port behind a relay (relay.ts says why).
    const relay = await startRelay(Number(new URL(srv.url).port));
    cleanups.push(() => relay.close());
    const client: Client<App> = createClient<App>({ url: `ws://127.0.0.1:${relay.port}`, WebSocket, headers: { As: { name: 'ann' } }, reconnect: { baseDelayMs: 20, maxDelayMs: 200 } });
    cleanups.push(() => Promise.resolve(client.close()));
    const view = client.live('TopScores', { kind: 'restart', limit: 3 });
    await view.ready;
    await client.call('Mutate', { op: 'insert', pk: 'r1', owner: 'o', kind: 'restart', score: 5 });
    assert.deepEqual(view.rows.map((r) => r.pk), ['r1']);

    // Stop: the socket closes, the data folder keeps r1. Start again on the same folder.
    const closed = nextState(client, 'disconnected', () => true, 60_000);
    await srv.stop();
    await closed;
    const reopened = nextState(client, 'open', () => true, 60_000);
    srv = await startApp(fixture('live-app'), { workers: 2, data: data.path });
    relay.target = Number(new URL(srv.url).port);
    await reopened;

    // A write after the restart reaches the resubscribed view, ordered with the row from before it.
    await client.call('Mutate', { op: 'insert', pk: 'r2', owner: 'o', kind: 'restart', score: 7 });
    while (!view.rows.some((r) => r.pk === 'r2')) await new Promise<void>((resolve) => view.on(() => resolve()));
    assert.deepEqual(view.rows.map((r) => [r.pk, r.score]), [['r2', 7], ['r1', 5]], 'the whole result after the restart (r1 from the saved folder) and the new row');
  });
});
