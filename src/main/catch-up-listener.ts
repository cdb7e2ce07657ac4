/**
 * @module main/catch-up-listener
 * Cluster mode: the node's port while it waits for Redis and catches up with the commit stream
 * (docs/cluster.md, "Operations"), before the app listens. `/health` answers 200 with phase
 * `catching-up` (and the node's cluster view once connected: how far it applied, the stream's
 * last record), `/ready` 503, anything else, WebSocket upgrades included, 503 with a message
 * saying why (a load balancer's health check and a client's reconnect both see it). Closed just
 * before the app listens on the same port (the app then binds the port number this one got, so
 * `--port 0` keeps one port from start to end).
 */
import type { us_listen_socket } from 'uWebSockets.js';
import type { ClusterView } from './cluster-registry.js';
import { listenOn } from './listen.js';
import type { LogFn } from './log.js';
import { newApp, type Uws } from './uws.js';

export const CATCHING_UP_MESSAGE = 'lexicons: this cluster node is catching up with the commit stream and does not accept connections yet; retry shortly or use another node';

export interface CatchUpListener {
  readonly port: number;
  /** Stops listening (idempotent). */
  close(): void;
}

export interface CatchUpListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { cert: string; key: string; passphrase?: string } | null;
  readonly nodeId: string;
  readonly startedAt: number;
}

/** Listens on the app's host and port; `view` is the node's cluster view once it is connected (else undefined). */
export async function listenWhileCatchingUp(uws: Uws, options: CatchUpListenerOptions, view: () => ClusterView | undefined, log: LogFn): Promise<CatchUpListener> {
  const app = newApp(uws, options.tls);
  app.get('/health', (res) => {
    const cluster = view() ?? { node: options.nodeId, phase: 'catching-up' };
    const body = { status: 'ok', phase: 'catching-up', connections: 0, uptimeSeconds: Math.round((Date.now() - options.startedAt) / 1000), cluster };
    res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(JSON.stringify(body), true);
  });
  app.get('/ready', (res) => {
    res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'application/json').end(JSON.stringify({ ready: false, reason: 'catching-up' }), true);
  });
  app.any('/*', (res) => {
    res.writeStatus('503 Service Unavailable').writeHeader('retry-after', '1').writeHeader('content-type', 'text/plain').end(CATCHING_UP_MESSAGE, true);
  });
  let socket: us_listen_socket | null = await listenOn(app, options.host, options.port, '');
  const port = uws.us_socket_local_port(socket as never);
  log('START', { cluster: options.nodeId, message: 'listening while catching up: /health says catching-up, WebSocket upgrades get 503 until the node is live', host: options.host, port });
  return {
    port,
    close() {
      if (socket !== null) uws.us_listen_socket_close(socket);
      socket = null;
    },
  };
}
