/**
 * @module main/admin-routes
 * The plain HTTP routes: `/health` and `/ready` (public, for load balancers and orchestrators)
 * and the admin routes (`/metrics`, and the admin page `/admin...` of main/admin-page.ts), which
 * are not public: a request gets them from an `adminTrust` address (default loopback), with
 * `Authorization: Bearer <adminToken>` (or HTTP Basic with the token as the password, so that a
 * browser can ask for it), or on the separate `adminPort` (which serves nothing else); otherwise
 * 401.
 *
 * `/health` answers whether the process is alive (200 unless it is stopping); `/ready` whether
 * it should get traffic (503 while starting, while stopping, and once the write-ahead log has
 * failed, since every commit is then refused).
 *
 * HTTP responses close their connection: a kept-alive scrape connection would otherwise outlive
 * the listen socket at shutdown.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { messageOf } from '../errors.js';
import type { ClusterView } from './cluster-registry.js';
import { AddressList } from '../ops-options.js';
import type { AdminPage } from './admin-page.js';
import { addAdminPage } from './admin-page.js';
import { requestAddress } from './client-address.js';
import type { ServerMetrics } from './metrics-registry.js';

/** `starting` until start-up completed, `ready`, then `stopping` from the first shutdown step. */
export type Phase = 'starting' | 'ready' | 'stopping';

export interface ServerStatus {
  phase: Phase;
  /** Why the write-ahead log refuses commits, or null. */
  walFailed: string | null;
  connections: number;
  workers: number;
  uptimeSeconds: number;
  /** Cluster mode: this node, its position and lag, and the nodes of the registry (docs/cluster.md). */
  cluster?: ClusterView;
}

/** Who may use the admin routes: `adminTrust` addresses, or the bearer of `adminToken`. */
export class AdminAccess {
  readonly #trust: AddressList;
  readonly #tokenDigest: Buffer | null;
  readonly #proxies: AddressList | null;

  constructor(trust: readonly string[], token: string | null, proxies: AddressList | null) {
    this.#trust = new AddressList(trust);
    this.#tokenDigest = token === null ? null : digest(token);
    this.#proxies = proxies;
  }

  /** Reads the request (during the handler) and tells whether it has admin rights. */
  allows(res: HttpResponse, req: HttpRequest): boolean {
    if (this.#trust.has(requestAddress(res, req, this.#proxies))) return true;
    if (this.#tokenDigest === null) return false;
    const given = presentedToken(req.getHeader('authorization'));
    // Digests of equal length: the comparison takes the same time whatever the guess.
    return given !== null && timingSafeEqual(digest(given), this.#tokenDigest);
  }
}

/** The token of `Bearer <token>`, or the password of `Basic base64(<any user>:<token>)`, or null. */
function presentedToken(authorization: string): string | null {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer !== null) return bearer[1]!;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (basic === null) return null;
  const pair = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = pair.indexOf(':');
  return colon < 0 ? null : pair.slice(colon + 1);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export interface AdminDeps {
  status(): ServerStatus;
  metrics: ServerMetrics;
  access: AdminAccess;
  /** The admin page's data and chart samples (absent: no `/admin` routes). */
  page?: AdminPage;
}

function json(res: HttpResponse, status: string, body: unknown): void {
  res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body), true);
}

/** `/health` and `/ready`: public on every port. */
export function addHealthRoutes(app: TemplatedApp, deps: AdminDeps): void {
  app.get('/health', (res) => {
    const { phase, connections, workers, uptimeSeconds, cluster } = deps.status();
    const alive = phase !== 'stopping';
    json(res, alive ? '200 OK' : '503 Service Unavailable', { status: alive ? 'ok' : 'stopping', phase, connections, workers, uptimeSeconds: Math.round(uptimeSeconds), ...(cluster ? { cluster } : {}) });
  });
  app.get('/ready', (res) => {
    const { phase, walFailed } = deps.status();
    const reason = phase !== 'ready' ? phase : walFailed !== null ? `write-ahead log failed: ${walFailed}` : null;
    json(res, reason === null ? '200 OK' : '503 Service Unavailable', reason === null ? { ready: true } : { ready: false, reason });
  });
}

/**
 * Wraps an admin route: without rights, 401 (with `WWW-Authenticate: Bearer`). `guarded: false`
 * on the admin port. The handler gets the request's headers it needs read up front (uWS requests
 * only live during the synchronous handler).
 */
export function adminRoute(deps: AdminDeps, guarded: boolean, handler: (res: HttpResponse, req: HttpRequest) => void): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    if (guarded && !deps.access.allows(res, req)) {
      res
        .writeStatus('401 Unauthorized')
        .writeHeader('www-authenticate', 'Bearer realm="lexicons admin", Basic realm="lexicons admin", charset="UTF-8"')
        .writeHeader('content-type', 'text/plain')
        .end('admin routes need a trusted address (adminTrust), Authorization: Bearer <adminToken>, or the admin port', true);
      return;
    }
    handler(res, req);
  };
}

/**
 * The admin routes: `/metrics` (OpenMetrics or Prometheus text, by the Accept header) and, with
 * `deps.page`, the admin page (`/admin`, its assets and `/admin/api/...`).
 */
export function addAdminRoutes(app: TemplatedApp, deps: AdminDeps, guarded: boolean): void {
  if (deps.page) addAdminPage(app, deps.page, deps.status, (handler) => adminRoute(deps, guarded, handler));
  app.get(
    '/metrics',
    adminRoute(deps, guarded, (res, req) => {
      const accept = req.getHeader('accept');
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      deps.metrics.render(accept).then(
        ({ contentType, body }) => {
          if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(body, true));
        },
        (err: unknown) => {
          if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').writeHeader('content-type', 'text/plain').end(`metrics failed: ${messageOf(err)}`, true));
        },
      );
    }),
  );
}
