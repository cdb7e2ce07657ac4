/**
 * The public probes of src/main/admin-routes.ts through every phase, against a stand-in uWS app
 * and response that record what is registered and written (the running server's routes are
 * tested end to end in test/server/ops.test.ts; the starting phase is too short to catch there).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { AdminAccess, addHealthRoutes, type Phase, type ServerStatus } from '../../src/main/admin-routes.js';
import { Metrics } from '../../src/main/metrics.js';
import { ServerMetrics } from '../../src/main/metrics-registry.js';

type Handler = (res: HttpResponse) => void;

function routes(status: () => ServerStatus): Map<string, Handler> {
  const registered = new Map<string, Handler>();
  const app = { get: (path: string, handler: Handler) => registered.set(path, handler) } as unknown as TemplatedApp;
  const metrics = new ServerMetrics({ counters: new Metrics(), gauges: () => ({ connections: 0, channels: 0, workers: 1, queuedUnits: 0, inFlightJobs: 0, poolQueue: 0, store: undefined, wal: undefined, uptimeSeconds: 0 }) });
  addHealthRoutes(app, { status, metrics, access: new AdminAccess(['localhost'], null, null) });
  return registered;
}

function answer(handler: Handler): { status: string; body: unknown } {
  const out = { status: '200 OK', body: undefined as unknown };
  const res = {
    writeStatus(s: string) {
      out.status = s;
      return res;
    },
    writeHeader() {
      return res;
    },
    end(body: string) {
      out.body = JSON.parse(body);
      return res;
    },
  };
  handler(res as unknown as HttpResponse);
  return out;
}

describe('/health and /ready through the phases', () => {
  it('starting: alive, not ready; ready: both; a failed log: alive, not ready; stopping: neither', () => {
    let phase: Phase = 'starting';
    let walFailed: string | null = null;
    const r = routes(() => ({ phase, walFailed, connections: 0, workers: 1, uptimeSeconds: 1.4 }));
    const health = () => answer(r.get('/health')!);
    const ready = () => answer(r.get('/ready')!);
    assert.deepEqual(health(), { status: '200 OK', body: { status: 'ok', phase: 'starting', connections: 0, workers: 1, uptimeSeconds: 1 } });
    assert.deepEqual(ready(), { status: '503 Service Unavailable', body: { ready: false, reason: 'starting' } });
    phase = 'ready';
    assert.deepEqual(ready(), { status: '200 OK', body: { ready: true } });
    walFailed = 'EIO: i/o error, fdatasync';
    assert.deepEqual(ready(), { status: '503 Service Unavailable', body: { ready: false, reason: 'write-ahead log failed: EIO: i/o error, fdatasync' } });
    assert.equal(health().status, '200 OK');
    phase = 'stopping';
    assert.equal(health().status, '503 Service Unavailable');
    assert.deepEqual(ready().body, { ready: false, reason: 'stopping' });
  });
});
