/**
 * The listening port is the server's own: a second server started on a port in use fails with a
 * clear error instead of sharing it (uWS's default SO_REUSEPORT would let the kernel split new
 * connections between the two), and a server restarted on its port rebinds at once although the
 * closed connections of the first one are still in TIME_WAIT.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, freePort, spawnCli, startApp } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('the listening port', { timeout: 120_000 }, () => {
  it('refuses a second server on a port in use, and rebinds at once after a restart', async () => {
    const port = await freePort();
    await using folder = await tempDir();
    const first = await startApp(fixture('cli-app'), { port, data: folder.path });
    try {
      const client = await TestClient.connect(first.url);
      await client.call({ AddNote: { text: 'before' } });

      await using other = await tempDir();
      // A server that did listen (the bug) is stopped before the assertion, not leaked.
      const outcome = await spawnCli([fixture('cli-app'), '--workers', '1', '--host', '127.0.0.1', '--port', String(port), '--data', other.path]).then(
        async (srv) => (await srv.stop(), 'a second server listened on the same port'),
        (err: Error) => err.message,
      );
      assert.ok(outcome.includes(`could not listen on 127.0.0.1:${port} (address in use, or host not available)`), outcome);
      // Every new connection still reaches the first server (none were handed to the refused one).
      for (let i = 0; i < 8; i++) {
        const c = await TestClient.connect(first.url);
        const [list] = (await c.call({ ListNotes: {} })) as [{ ListNotes: Array<{ text: string }> }];
        assert.deepEqual(list.ListNotes.map((n) => n.text), ['before']);
        await c.close();
      }
      await client.close();
    } finally {
      await first.stop(); // the server closes its connections: their server side is in TIME_WAIT
    }
    await using second = await startApp(fixture('cli-app'), { port, data: folder.path });
    await using c = await TestClient.connect(second.url);
    const [list] = (await c.call({ ListNotes: {} })) as [{ ListNotes: Array<{ text: string }> }];
    assert.ok(list.ListNotes.some((n) => n.text === 'before'), 'the restarted server serves the same folder');
  });
});
