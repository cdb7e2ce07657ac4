/**
 * The HTTP surface of a running server (src/main/admin-routes.ts): `/metrics` in both formats
 * (strictly parsed), only from `adminTrust` addresses or with the admin token, or on the admin
 * port; `/health` and `/ready` through start, a write-ahead log failure, and shutdown.
 */
import assert from 'node:assert/strict';
import { BroadcastChannel } from 'node:worker_threads';
import { describe, it } from 'node:test';
import { walTestHooks } from '../../src/storage/wal.js';
import { SHUTDOWN_CHANNEL } from '../fixtures/apps/ops-app.js';
import { TestClient } from '../helpers/client.js';
import { parseOpenMetrics, parsePrometheusText } from '../helpers/exposition.js';
import { fixture, startApp, suiteApp } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const APP = fixture('ops-app');
const TOKEN = 'correct-horse-battery-staple';

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe('/metrics and the admin access (default adminTrust: loopback)', { timeout: 30_000 }, () => {
  const srv = suiteApp(APP);

  it('serves Prometheus text by default and OpenMetrics when asked; both pass the strict parsers and count the calls', async () => {
    await using c = await TestClient.connect(srv.url);
    for (let i = 0; i < 3; i++) assert.deepEqual(await c.call({ AddNote: { text: `n${i}` } }), [{ AddNote: { text: `n${i}` } }]);
    const prom = await get(srv.port, '/metrics');
    assert.equal(prom.status, 200);
    assert.equal(prom.type, 'text/plain; version=0.0.4; charset=utf-8');
    const p = parsePrometheusText(prom.body);
    assert.equal(p.get('lexicons_connections')?.samples[0]?.value, 1);
    assert.equal(p.get('lexicons_connections_admitted_total')?.samples[0]?.value, 1);
    assert.equal(p.get('lexicons_signals_total')?.samples[0]?.value, 3);

    const om = await get(srv.port, '/metrics', { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' });
    assert.equal(om.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    const o = parseOpenMetrics(om.body);
    const sample = (family: string, name: string) => o.get(family)?.samples.find((s) => s.name === name && !('le' in s.labels))?.value;
    assert.equal(sample('lexicons_signals', 'lexicons_signals_total'), 3);
    assert.equal(sample('lexicons_call_duration_seconds', 'lexicons_call_duration_seconds_count'), 3);
    assert.ok(sample('lexicons_batch_duration_seconds', 'lexicons_batch_duration_seconds_count')! >= 2, 'at least the connect and the calls');
    assert.equal(sample('lexicons_commit_duration_seconds', 'lexicons_commit_duration_seconds_count'), sample('lexicons_batch_duration_seconds', 'lexicons_batch_duration_seconds_count'));
    assert.ok(sample('lexicons_commit_duration_seconds', 'lexicons_commit_duration_seconds_sum')! > 0);
    // The stages of a call's latency: every unit queued once; every batch's worker time and apply time, within its round trip.
    const batches = sample('lexicons_batch_duration_seconds', 'lexicons_batch_duration_seconds_count')!;
    assert.equal(sample('lexicons_queue_wait_seconds', 'lexicons_queue_wait_seconds_count'), sample('lexicons_batch_units', 'lexicons_batch_units_total'));
    assert.equal(sample('lexicons_batch_run_seconds', 'lexicons_batch_run_seconds_count'), batches);
    assert.equal(sample('lexicons_batch_apply_seconds', 'lexicons_batch_apply_seconds_count'), batches);
    assert.ok(sample('lexicons_batch_run_seconds', 'lexicons_batch_run_seconds_sum')! <= sample('lexicons_batch_duration_seconds', 'lexicons_batch_duration_seconds_sum')!);
    assert.ok(o.has('nodejs_eventloop_lag_seconds') && o.has('nodejs_heap_size_used_bytes'));
  });

  it('/health and /ready answer 200 while running; unknown paths 404', async () => {
    const health = await get(srv.port, '/health');
    assert.equal(health.status, 200);
    assert.deepEqual({ ...JSON.parse(health.body), connections: 0, uptimeSeconds: 0 }, { status: 'ok', phase: 'ready', connections: 0, workers: 1, uptimeSeconds: 0 });
    const ready = await get(srv.port, '/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), { ready: true });
    assert.equal((await get(srv.port, '/admin/nope')).status, 404);
  });
});

describe('/metrics from an address outside adminTrust', { timeout: 30_000 }, () => {
  const srv = suiteApp(APP, { overrides: { adminTrust: ['10.1.2.0/24'], adminToken: TOKEN } });

  it('gets 401 without the token or with a wrong one, 200 with Authorization: Bearer <adminToken>; /health and /ready stay public', async () => {
    const refused = await get(srv.port, '/metrics');
    assert.equal(refused.status, 401);
    assert.match(refused.body, /admin routes need a trusted address \(adminTrust\), Authorization: Bearer <adminToken>, or the admin port/);
    assert.equal((await get(srv.port, '/metrics', { authorization: 'Bearer wrong-token-of-some-length' })).status, 401);
    assert.equal((await get(srv.port, '/metrics', { authorization: TOKEN })).status, 401, 'the Bearer scheme is required');
    const allowed = await get(srv.port, '/metrics', { authorization: `Bearer ${TOKEN}` });
    assert.equal(allowed.status, 200);
    assert.ok(parsePrometheusText(allowed.body).has('lexicons_frames_total'));
    assert.equal((await get(srv.port, '/health')).status, 200);
    assert.equal((await get(srv.port, '/ready')).status, 200);
  });
});

describe('the admin port', { timeout: 30_000 }, () => {
  it('serves /metrics, /health and /ready without a token (the main port no longer serves /metrics); /ready is 503 while stopping and the port stays open until the end of shutdown', async () => {
    process.env.LEXICONS_OPS_HOLD_SHUTDOWN = '1';
    const release = new BroadcastChannel(SHUTDOWN_CHANNEL);
    try {
      // Disposed before the finally below: if the test fails before the release, the held
      // shutdown ends on its own 10 s bound.
      await using srv = await startApp(APP, { overrides: { adminTrust: ['10.1.2.3'], adminPort: 0 } });
      const adminPort = srv.running.adminPort!;
      assert.ok(adminPort > 0 && adminPort !== srv.port);
      assert.equal((await get(srv.port, '/metrics')).status, 404);
      const metrics = await get(adminPort, '/metrics');
      assert.equal(metrics.status, 200);
      assert.ok(parsePrometheusText(metrics.body).has('lexicons_connections'));
      assert.equal((await get(adminPort, '/ready')).status, 200);
      assert.equal((await get(adminPort, '/')).status, 404);
      await using c = await TestClient.connect(srv.url);

      const stopped = srv.stop();
      await c.waitClosed(); // shutdown is under way; the shutdown task holds it
      const health = await get(adminPort, '/health');
      assert.equal(health.status, 503);
      assert.equal(JSON.parse(health.body).status, 'stopping');
      const ready = await get(adminPort, '/ready');
      assert.equal(ready.status, 503);
      assert.deepEqual(JSON.parse(ready.body), { ready: false, reason: 'stopping' });
      release.postMessage('go');
      await stopped;
      await assert.rejects(fetch(`http://127.0.0.1:${adminPort}/health`), 'closed after shutdown');
    } finally {
      release.close();
      delete process.env.LEXICONS_OPS_HOLD_SHUTDOWN;
    }
  });
});

describe('/ready after a write-ahead log failure', { timeout: 30_000 }, () => {
  it('is 503 with the reason once an fdatasync failed; /health stays 200', async () => {
    // Not `await using srv`: its stop fails (the final flush), so the test stops it and owns the folder.
    await using data = await tempDir();
    const srv = await startApp(APP, { data: data.path });
    const c = await TestClient.connect(srv.url);
    try {
      walTestHooks.datasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      await c.call({ AddNote: { text: 'written, then the background fdatasync fails' } });
      await srv.waitForLog((r) => r.status === 'ERROR' && /write-ahead log/.test(String(r.data.message)), 5000);
      const ready = await get(srv.port, '/ready');
      assert.equal(ready.status, 503);
      assert.match(JSON.parse(ready.body).reason, /^write-ahead log failed: .*EIO/);
      assert.equal((await get(srv.port, '/health')).status, 200);
      assert.match((await get(srv.port, '/metrics')).body, /^lexicons_wal_failed 1$/m);
    } finally {
      walTestHooks.datasync = undefined;
      await c.close();
      await srv.stop().catch(() => undefined); // the final flush fails too
    }
  });
});
