/**
 * A worker app over `store` in the test's own thread, with a real control plane (comlink over a
 * MessageChannel to a ControlHost that is not a cluster node): what a pool worker gets, without
 * the pool.
 */
import { MessageChannel } from 'node:worker_threads';
import { wrap } from 'comlink';
import { ControlHost } from '../../src/main/control-host.js';
import type { Server } from '../../src/server.js';
import type { SharedStore } from '../../src/storage/store.js';
import { portEndpoint, type ControlApi } from '../../src/workers/control-plane.js';
import { createProgressBuffer } from '../../src/workers/progress.js';
import { createWorkerApp } from '../../src/workers/worker-app.js';

export function inThreadWorkerApp(server: Server, store: SharedStore): { app: ReturnType<typeof createWorkerApp>; store: SharedStore; close: () => void } {
  const host = new ControlHost({
    storeHandles: async () => ({ handles: store.handles, wal: null }),
    info: () => ({ connections: 2, channels: { Public: 0 } }),
    channels: () => ({ version: 0, names: [] }),
    presence: () => 0,
    log: () => undefined,
    commit: () => Promise.resolve({ ok: false, reason: 'unavailable', message: 'not a cluster node' }),
  });
  const { port1, port2 } = new MessageChannel();
  host.attach(port2, 1);
  const control = wrap<ControlApi>(portEndpoint(port1));
  const app = createWorkerApp(server, store, { progress: createProgressBuffer(4), maxCallsPerFrame: 10, maxRecoveredPublications: 1000, debug: false }, control);
  return {
    app,
    store,
    close: () => {
      host.close();
      port1.close();
    },
  };
}
