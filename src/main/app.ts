/**
 * @module main/app
 * The uWebSockets.js app (SSLApp with `tls`): the WebSocket route (upgrade, open, message, close)
 * and the HTTP routes of main/admin-routes.ts (`/health`, `/ready`, and `/metrics` unless the
 * admin routes have their own port) on the same port. The client address is the socket peer or,
 * behind a `trustProxy`, the forwarded one (main/client-address.ts).
 *
 * Upgrade (decided by main/upgrade.ts decideUpgrade): untrusted addresses and disallowed origins
 * get an HTTP 403 before any upgrade; login attempts (header data) over
 * `limits.authAttemptsPerMinute` per address get HTTP 429, header data longer than
 * `limits.maxMessageBytes` HTTP 431. When the app declares Headers (or an onConnect hook), the
 * upgrade completes asynchronously after the
 * Headers ran in the pool (res.onAborted; res.cork(() => res.upgrade(...)) in the effects), so
 * an admitted client's `open` means authenticated. A refused client is still upgraded (browsers
 * cannot read the status of a failed upgrade): it gets `[{"Errors": ["Authentication failed:
 * <reason>"]}]` and close 1008.
 *
 * Inbound frames: binary frames and frames over the rate limit get an Errors reply without
 * reaching the pool; text frames are copied out of uWS's buffer (valid only during the callback)
 * and queued for the dispatcher. JSON parsing happens in the workers.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Components, ResolvedServerOptions, ServerOptions } from '../server.js';
import { UNIT_CONNECT, UNIT_DISCONNECT, UNIT_FRAME } from '../job-contract.js';
import { authenticationError, CloseCode, closeReason, errorFrame } from '../protocol.js';
import { SocketConnection, type SocketUserData } from './socket-connection.js';
import type { Dispatcher } from './dispatch.js';
import { admitConnection } from './effects.js';
import type { Hub } from './hub.js';
import { newApp, type Uws } from './uws.js';
import { AttemptLimiter, collectHeaderData, decideUpgrade, type UpgradePolicy } from './upgrade.js';
import type { AddressList } from '../ops-options.js';
import { addAdminRoutes, addHealthRoutes, type AdminDeps } from './admin-routes.js';
import { requestAddress } from './client-address.js';

/** Frames waiting on the main thread for one connection before further frames are refused. */
export const MAX_QUEUED_FRAMES = 1024;

export interface AppDeps {
  uws: Uws;
  hub: Hub;
  dispatcher: Dispatcher;
  options: ResolvedServerOptions;
  components: Components;
  hooks: Pick<ServerOptions, 'onConnect' | 'onDisconnect'>;
  /** False once shutdown began: upgrades get 503, frames an error. */
  accepting: () => boolean;
  /** Trusted reverse proxies (`trustProxy`), or null. */
  proxies: AddressList | null;
  admin: AdminDeps;
}

export function createApp(deps: AppDeps): TemplatedApp {
  const { uws, options } = deps;
  const { limits } = options;
  const app = newApp(uws, options.tls);
  app.ws<SocketUserData>('/*', {
    compression: uws.DISABLED,
    // uWS drops (1006) frames over maxPayloadLength; frames between the limit and twice it get
    // a clean 1009 from the message handler below.
    maxPayloadLength: Math.min(2 ** 31 - 1, limits.maxMessageBytes + Math.max(limits.maxMessageBytes, 64 * 1024)),
    idleTimeout: limits.idleTimeoutSeconds,
    maxBackpressure: limits.maxBackpressureBytes,
    closeOnBackpressureLimit: 1,
    sendPingsAutomatically: true,
    upgrade: upgradeHandler(deps),
    open: (socket: WebSocket<SocketUserData>) => onOpen(deps.hub, socket),
    message: inboundFrameHandler(deps),
    close: (socket: WebSocket<SocketUserData>, code: number) => onClose(deps, socket.getUserData().connection, code),
  });
  addHttpRoutes(app, deps);
  return app;
}

/** The upgrade step: {@link decideUpgrade}, then refuse, reject, admit, or wait for the pool. */
function upgradeHandler(deps: AppDeps): (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void {
  const { hub, dispatcher, options, components, hooks } = deps;
  const { limits } = options;
  const headerNames = [...components.headers.keys()];
  const policy: UpgradePolicy = {
    trust: options.trust,
    origins: options.origins,
    maxHeaderDataBytes: limits.maxMessageBytes,
    authAttemptsPerMinute: limits.authAttemptsPerMinute,
    attempts: new AttemptLimiter(limits.authAttemptsPerMinute),
    headerNames,
    anonymous: options.anonymous,
    onConnect: hooks.onConnect !== undefined,
  };
  return (res, req, context) => {
    const address = requestAddress(res, req, deps.proxies);
    const request = { address, origin: req.getHeader('origin'), headerData: () => collectHeaderData(req, headerNames) };
    const decision = decideUpgrade(request, policy, deps.accepting());
    if (decision.kind === 'refuse') {
      if (decision.log) hub.log(decision.log.status, decision.log.data);
      if (decision.log?.status === 'UNTRUSTED-SOURCE-DENIED') hub.metrics.untrustedDenied++;
      res.writeStatus(decision.status);
      if (decision.retryAfterSeconds !== undefined) res.writeHeader('retry-after', String(decision.retryAfterSeconds));
      res.end(decision.body, true);
      return;
    }
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const conn = new SocketConnection(address, limits.messagesPerSecond);
    if (decision.kind === 'reject') {
      conn.rejection = authenticationError(decision.reason);
      hub.log('HEADER-CHECK-FAILED', { connection: conn.id, address, reason: 'no header data' });
      hub.metrics.connectionsRejected++;
    } else if (decision.kind === 'viaPool') {
      const pending = { res, key, protocol, extensions, context, aborted: false };
      res.onAborted(() => {
        pending.aborted = true;
      });
      conn.upgrade = pending;
      conn.viaPool = true;
      hub.connections.set(conn.id, conn);
      dispatcher.enqueue(conn, { kind: UNIT_CONNECT, headerData: decision.headerData });
      return;
    }
    res.upgrade({ connection: conn } satisfies SocketUserData, key, protocol, extensions, context);
  };
}

function onOpen(hub: Hub, socket: WebSocket<SocketUserData>): void {
  const conn = socket.getUserData().connection;
  conn.socket = socket;
  conn.state = 'open';
  hub.connections.set(conn.id, conn);
  if (conn.rejection !== null) {
    const reason = conn.rejection.message;
    conn.send(errorFrame([reason]));
    conn.end(CloseCode.POLICY, closeReason(reason));
    return;
  }
  if (!conn.viaPool) admitConnection(hub, conn);
}

/**
 * The inbound frame checks, before anything reaches the pool: binary frames, frames too big, while
 * shutting down, over the rate limit or the queue limit are answered here; the text of any other
 * frame is queued for the dispatcher. The ArrayBuffer is only valid during the uWS callback:
 * decoding copies it. (Hot path: everything it reads is bound once, here.)
 */
function inboundFrameHandler(deps: AppDeps): (socket: WebSocket<SocketUserData>, message: ArrayBuffer, isBinary: boolean) => void {
  const { hub, dispatcher } = deps;
  const { limits } = deps.options;
  return (socket, message, isBinary) => {
    const conn = socket.getUserData().connection;
    if (!conn.admitted) return;
    if (isBinary) {
      hub.metrics.errorsTotal++;
      conn.send(errorFrame(['Binary frames are not supported: send JSON text frames']));
      return;
    }
    if (message.byteLength > limits.maxMessageBytes) {
      conn.end(CloseCode.TOO_BIG, `message too big (limit ${limits.maxMessageBytes} bytes)`);
      return;
    }
    if (!deps.accepting()) {
      conn.send(errorFrame(['Server is shutting down']));
      return;
    }
    const verdict = conn.limiter.take();
    if (verdict !== 'ok') {
      hub.metrics.rateLimited++;
      if (verdict === 'abuse') {
        hub.log('LIMIT', { connection: conn.id, address: conn.address, message: 'rate limit abuse: connection closed' });
        conn.end(CloseCode.POLICY, 'rate limit exceeded');
      } else {
        conn.send(errorFrame([`Rate limit exceeded (${limits.messagesPerSecond} messages per second)`]));
      }
      return;
    }
    if (conn.queue.length >= MAX_QUEUED_FRAMES) {
      hub.metrics.rateLimited++;
      conn.send(errorFrame([`Too many pending messages (${MAX_QUEUED_FRAMES}); wait for replies`]));
      return;
    }
    const text = Buffer.from(message).toString('utf8');
    hub.metrics.framesTotal++;
    dispatcher.enqueue(conn, { kind: UNIT_FRAME, text });
  };
}

function onClose(deps: AppDeps, conn: SocketConnection, code: number): void {
  const { hub } = deps;
  conn.state = 'closed';
  conn.socket = null;
  hub.channels.leaveAll(conn);
  if (conn.admitted) {
    hub.log('DISCONNECT', { connection: conn.id, address: conn.address, code });
    if (deps.hooks.onDisconnect) {
      deps.dispatcher.enqueue(conn, { kind: UNIT_DISCONNECT });
      return;
    }
  }
  if (!conn.busy && conn.queue.length === 0) hub.connections.delete(conn.id);
}

/**
 * `/health`, `/ready`, `/metrics` (guarded; on the admin port instead when there is one), and a
 * 404 for anything else. HTTP responses close their connection: a kept-alive scrape connection
 * would otherwise outlive the listen socket at shutdown.
 */
function addHttpRoutes(app: TemplatedApp, deps: AppDeps): void {
  addHealthRoutes(app, deps.admin);
  if (deps.options.adminPort === null) addAdminRoutes(app, deps.admin, true);
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('content-type', 'text/plain').end('lexicons: connect with a WebSocket client; see /health and /ready', true);
  });
}
