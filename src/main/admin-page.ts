/**
 * @module main/admin-page
 * The admin page's routes, each behind the admin guard (main/admin-routes.ts `adminRoute`):
 *
 * - `GET /admin`: the page (`admin-web/index.html`, with `app.js` and `style.css` beside it,
 *   shipped in the package: no CDN, no framework; charts are drawn on a canvas);
 * - `GET /admin/api/overview`: server status, tables (row counts, fields), connections, channels;
 * - `GET /admin/api/rows?table=&offset=&limit=&sort=&desc=`: a page of rows (main/admin-data.ts);
 * - `GET /admin/api/samples?after=<seq>`: the chart samples after `seq` (main/admin-sampler.ts);
 *   the page polls it once a second.
 *
 * Every answer is `Cache-Control: no-store`; the page has a strict Content-Security-Policy (its
 * own script and style only) and writes values as text, never as HTML.
 */
import { readFileSync } from 'node:fs';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { messageOf } from '../errors.js';
import { AdminRequestError, type AdminData } from './admin-data.js';
import type { AdminSampler } from './admin-sampler.js';

/** What the page reads: the data views, the sampler, and the server status. */
export interface AdminPage {
  readonly data: AdminData;
  readonly sampler: AdminSampler;
}

type Handler = (res: HttpResponse, req: HttpRequest) => void;

const ASSETS_DIR = new URL('./admin-web/', import.meta.url);
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.js.map': 'application/json',
  'style.css': 'text/css; charset=utf-8',
};
const PAGE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
];

/** The built assets, read once (a missing file is reported on request, not at start). */
function loadAssets(): Map<string, Buffer | Error> {
  const out = new Map<string, Buffer | Error>();
  for (const name of Object.keys(ASSETS)) {
    try {
      out.set(name, readFileSync(new URL(name, ASSETS_DIR)));
    } catch (err) {
      out.set(name, new Error(`admin page asset ${name} is missing (${messageOf(err)}): the package was built without it`));
    }
  }
  return out;
}

function send(res: HttpResponse, status: string, type: string, body: string | Buffer, headers: ReadonlyArray<readonly [string, string]> = []): void {
  res.writeStatus(status).writeHeader('content-type', type).writeHeader('cache-control', 'no-store').writeHeader('x-content-type-options', 'nosniff');
  for (const [name, value] of headers) res.writeHeader(name, value);
  res.end(body, true);
}

function sendJson(res: HttpResponse, body: unknown): void {
  send(res, '200 OK', 'application/json', JSON.stringify(body));
}

/** Runs a JSON view: 400 with the reason for a refused request, 500 for a failure. */
function api(view: (query: URLSearchParams) => unknown): Handler {
  return (res, req) => {
    const query = new URLSearchParams(req.getQuery() ?? '');
    let body: unknown;
    try {
      body = view(query);
    } catch (err) {
      const refused = err instanceof AdminRequestError;
      send(res, refused ? '400 Bad Request' : '500 Internal Server Error', 'application/json', JSON.stringify({ error: messageOf(err) }));
      return;
    }
    sendJson(res, body);
  };
}

/**
 * Registers the page's routes on `app`; `guard` wraps each handler with the admin check.
 * `status` is the server status `/health` reports.
 */
export function addAdminPage(app: TemplatedApp, page: AdminPage, status: () => unknown, guard: (handler: Handler) => Handler): void {
  const assets = loadAssets();
  const asset = (name: string): Handler =>
    guard((res) => {
      const body = assets.get(name)!;
      if (body instanceof Error) send(res, '500 Internal Server Error', 'text/plain', body.message);
      else send(res, '200 OK', ASSETS[name]!, body, name === 'index.html' ? PAGE_HEADERS : []);
    });
  app.get('/admin', asset('index.html'));
  app.get('/admin/', asset('index.html'));
  for (const name of Object.keys(ASSETS)) if (name !== 'index.html') app.get(`/admin/${name}`, asset(name));
  app.get(
    '/admin/api/overview',
    guard(api(() => ({ status: status(), tables: page.data.tables(), connections: page.data.connections(), channels: page.data.channels(), sampleIntervalMs: page.sampler.intervalMs }))),
  );
  app.get('/admin/api/rows', guard(api((q) => page.data.rows(q))));
  app.get(
    '/admin/api/samples',
    guard(
      api((q) => {
        const after = Number(q.get('after') ?? 0);
        if (!Number.isSafeInteger(after) || after < 0) throw new AdminRequestError(`after must be a sample number, got ${JSON.stringify(q.get('after'))}`);
        return { intervalMs: page.sampler.intervalMs, samples: page.sampler.since(after) };
      }),
    ),
  );
}
