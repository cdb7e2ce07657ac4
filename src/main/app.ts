/**
 * @module main/app
 * The uWebSockets.js app (SSLApp with `tls`): the WebSocket route (upgrade, open, message, close)
 * and the HTTP routes of main/admin-routes.ts (`/health`, `/ready`, and `/metrics` unless the
 * admin routes have their own port) on the same port, and the `static` folder's files when set.
 * The client address is the socket peer or, behind a `trustProxy`, the forwarded one
 * (main/client-address.ts).
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
 * A client offering the `lexicons.v1` subprotocol is upgraded at once (after the trust, origin
 * and 431 checks) and admitted by its first frame, `$connect` (main/v1-admission.ts).
 *
 * Inbound frames: binary frames and frames over the rate limit get an Errors reply without
 * reaching the pool (an item per call with `$id`, main/call-replies.ts); text frames are copied
 * out of uWS's buffer (valid only during the callback) and queued for the dispatcher. JSON
 * parsing happens in the workers.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, us_socket_context_t, WebSocket } from 'uWebSockets.js';
import type { Components, ResolvedServerOptions, ServerOptions } from '../server.js';
import { UNIT_CONNECT, UNIT_DISCONNECT, UNIT_FRAME } from '../job-contract.js';
import { authenticationError, CloseCode, closeReason, errorFrame } from '../protocol.js';
import { Frame, SUBPROTOCOL, WireCode } from '../wire.js';
import { refuseFrame } from './call-replies.js';
import { SocketConnection, type SocketUserData } from './socket-connection.js';
import type { Dispatcher } from './dispatch.js';
import { admitConnection } from './effects.js';
import { serveStatic } from './static.js';
import type { Hub } from './hub.js';
import { newApp, type Uws } from './uws.js';
import { AttemptLimiter, collectHeaderData, decideUpgrade, type UpgradePolicy } from './upgrade.js';
import type { AddressList } from '../ops-options.js';
import { addAdminRoutes, addHealthRoutes, type AdminDeps } from './admin-routes.js';
import { requestAddress } from './client-address.js';
import { offersV1, V1Admission } from './v1-admission.js';
import { pump } from './catch-up.js';
import { connectionClosed, recover } from './membership.js';

/** How a `$recover` frame starts (the client library writes it so; main/membership.ts reads it). */
const RECOVER_PREFIX = `{"${Frame.RECOVER}"`;
/** Live query frames (main/live-registry.ts). */
const LIVE_PREFIX = `{"${Frame.LIVE}"`;
const UNLIVE_PREFIX = `{"${Frame.UNLIVE}"`;

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
  const policy = upgradePolicy(deps);
  const v1 = new V1Admission({ hub: deps.hub, dispatcher: deps.dispatcher, policy, limits, accepting: deps.accepting });
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
    upgrade: upgradeHandler(deps, policy, v1),
    open: (socket: WebSocket<SocketUserData>) => onOpen(deps.hub, v1, socket),
    message: inboundFrameHandler(deps, v1),
    // Recoveries are sent at the pace the socket drains (main/catch-up.ts).
    drain: (socket: WebSocket<SocketUserData>) => {
      const conn = socket.getUserData().connection;
      pump(deps.hub, conn);
      deps.hub.live.drained(conn);
    },
    close: (socket: WebSocket<SocketUserData>, code: number) => onClose(deps, v1, socket.getUserData().connection, code),
  });
  addHttpRoutes(app, deps);
  // GET/HEAD of the folder's files; /health and /metrics (exact routes) win, upgrades are yielded to the ws route.
  if (options.static) serveStatic(app, options.static.dir, options.static);
  return app;
}

/** The server's upgrade policy (shared by upgrades and v1 `$connect` frames: one login-attempt limiter). */
function upgradePolicy(deps: AppDeps): UpgradePolicy {
  const { options, components, hooks } = deps;
  const { limits } = options;
  const headerNames = [...components.headers.keys()];
  return {
    trust: options.trust,
    origins: options.origins,
    maxHeaderDataBytes: limits.maxMessageBytes,
    authAttemptsPerMinute: limits.authAttemptsPerMinute,
    attempts: new AttemptLimiter(limits.authAttemptsPerMinute),
    headerNames,
    anonymous: options.anonymous,
    onConnect: hooks.onConnect !== undefined,
  };
}

/** The upgrade step: {@link decideUpgrade}, then refuse, reject, admit, upgrade a v1 client, or wait for the pool. */
function upgradeHandler(deps: AppDeps, policy: UpgradePolicy, v1: V1Admission): (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void {
  const { hub, dispatcher, options } = deps;
  const { limits } = options;
  const { headerNames } = policy;
  return (res, req, context) => {
    const address = requestAddress(res, req, deps.proxies);
    const protocol = req.getHeader('sec-websocket-protocol');
    const request = { address, origin: req.getHeader('origin'), v1: offersV1(protocol), headerData: () => collectHeaderData(req, headerNames) };
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
    const extensions = req.getHeader('sec-websocket-extensions');
    const conn = new SocketConnection(address, limits.messagesPerSecond, limits.maxBackpressureBytes);
    if (decision.kind === 'v1') {
      conn.v1 = v1.session(decision.headerData);
      res.upgrade({ connection: conn } satisfies SocketUserData, key, SUBPROTOCOL, extensions, context);
      return;
    }
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

function onOpen(hub: Hub, v1: V1Admission, socket: WebSocket<SocketUserData>): void {
  const conn = socket.getUserData().connection;
  conn.socket = socket;
  conn.state = 'open';
  hub.connections.set(conn.id, conn);
  if (conn.v1 !== null) return v1.opened(conn);
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
function inboundFrameHandler(deps: AppDeps, v1: V1Admission): (socket: WebSocket<SocketUserData>, message: ArrayBuffer, isBinary: boolean) => void {
  const { hub, dispatcher } = deps;
  const { limits } = deps.options;
  return (socket, message, isBinary) => {
    const conn = socket.getUserData().connection;
    if (!conn.admitted) {
      if (conn.v1 !== null) v1.frame(conn, message, isBinary);
      return;
    }
    if (isBinary) {
      hub.metrics.errorsTotal++;
      refuseFrame(conn, message, 'Binary frames are not supported: send JSON text frames', WireCode.PROTOCOL);
      return;
    }
    if (message.byteLength > limits.maxMessageBytes) {
      conn.end(CloseCode.TOO_BIG, `message too big (limit ${limits.maxMessageBytes} bytes)`);
      return;
    }
    if (!deps.accepting()) {
      refuseFrame(conn, message, 'Server is shutting down', WireCode.SHUTTING_DOWN);
      return;
    }
    const verdict = conn.limiter.take();
    if (verdict !== 'ok') {
      hub.metrics.rateLimited++;
      if (verdict === 'abuse') {
        hub.log('LIMIT', { connection: conn.id, address: conn.address, message: 'rate limit abuse: connection closed' });
        conn.end(CloseCode.POLICY, 'rate limit exceeded');
      } else {
        refuseFrame(conn, message, `Rate limit exceeded (${limits.messagesPerSecond} messages per second)`, WireCode.RATE_LIMITED);
      }
      return;
    }
    if (conn.queue.length >= MAX_QUEUED_FRAMES) {
      hub.metrics.rateLimited++;
      refuseFrame(conn, message, `Too many pending messages (${MAX_QUEUED_FRAMES}); wait for replies`, WireCode.QUEUE_FULL);
      return;
    }
    const text = Buffer.from(message).toString('utf8');
    hub.metrics.framesTotal++;
    if (conn.v1 !== null && text.startsWith(RECOVER_PREFIX)) {
      recover(hub, conn, text);
      return;
    }
    if (conn.v1 !== null && (text.startsWith(LIVE_PREFIX) || text.startsWith(UNLIVE_PREFIX))) {
      hub.live.frame(conn, text);
      return;
    }
    if (conn.session === null) {
      dispatcher.enqueue(conn, { kind: UNIT_FRAME, text });
      return;
    }
    // Calls with `$key`: registered with the session; replays are answered from it (main/sessions.ts).
    const keyed = hub.sessions.filter(conn, text);
    if (keyed !== null) dispatcher.enqueue(conn, keyed.keys === undefined ? { kind: UNIT_FRAME, text: keyed.text } : { kind: UNIT_FRAME, text: keyed.text, keys: keyed.keys });
  };
}

function onClose(deps: AppDeps, v1: V1Admission, conn: SocketConnection, code: number): void {
  const { hub } = deps;
  conn.state = 'closed';
  conn.socket = null;
  if (conn.v1 !== null) v1.closed(conn);
  if (conn.admitted) connectionClosed(hub, conn, code);
  hub.live.closed(conn);
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
