/**
 * @module lexicons/testing
 * A testing kit for lexicons apps: `startTestServer` runs an app (in this process, or as a child
 * process) on a free loopback port with a temp data folder; `app.client()` gives connected, typed
 * clients; `app.db` reads and seeds its database; `await using` disposes of it all. docs/testing.md.
 *
 * @example
 * import assert from 'node:assert/strict';
 * import { test } from 'node:test';
 * import { startTestServer } from 'lexicons/testing';
 * import { server } from '../main.js';
 *
 * test('Echo answers its caller', async () => {
 *   await using app = await startTestServer(server);
 *   const client = await app.client();
 *   assert.deepEqual(await client.call('Echo', { text: 'hi' }), { text: 'hi' });
 * });
 */
export { startTestServer } from './test-server.js';
export type { TestServer, TestServerOptions, TestClientOptions } from './test-server.js';
export type { TestDb } from './test-db.js';
