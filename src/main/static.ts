/**
 * @module main/static
 * Serves a folder of static files on a uWS app (GET and HEAD), e.g. the chat example's web page.
 * Not wired into the Server options yet (issue #9 phase 2: a `static` option and `--static DIR`).
 *
 * Safety: the URL path is percent-decoded segment by segment; malformed encodings, NUL,
 * backslashes, encoded slashes and `.`/`..` segments are refused (400) before any file system
 * access; dotfiles are not served; the file's real path (symlinks resolved) must stay inside the
 * folder's real path; it is opened with O_NOFOLLOW and must be a regular file of at most
 * `maxFileBytes`. Caching: a strong ETag from size and mtime, `Cache-Control` (default
 * `no-cache`: revalidate, since file names carry no hash), 304 on a matching If-None-Match.
 * WebSocket upgrade requests are yielded to the app's ws route.
 *
 * @example
 * serveStatic(app, 'dist/examples/chat/web'); // GET / → index.html, GET /app.js, ...
 */
import { constants, realpathSync, statSync } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { ErrorCode, LexiconsError } from '../errors.js';

export interface StaticOptions {
  /** URL path the folder is served under. Default `/`. */
  prefix?: string;
  /** `Cache-Control` of every file. Default `no-cache` (the browser revalidates with the ETag). */
  cacheControl?: string;
  /** Largest file served, in bytes (a larger one gets 403). Default 16 MiB. */
  maxFileBytes?: number;
  /** File served for a URL ending in `/`. Default `index.html`. */
  index?: string;
}

/** Content types by extension; anything else is `application/octet-stream`. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.webmanifest': 'application/manifest+json',
  '.xml': 'application/xml',
  '.pdf': 'application/pdf',
};

const TEXT = 'text/plain; charset=utf-8';

type Resolved = { status: 400 | 404; message: string } | { segments: string[]; directory: boolean };

/**
 * Decodes the path below the prefix into safe segments, or says why not. A trailing `/` (or an
 * empty path) asks for the directory's index.
 */
export function decodePath(path: string): Resolved {
  const raw = path.split('/');
  const directory = raw[raw.length - 1] === '';
  const segments: string[] = [];
  for (const part of raw) {
    if (part === '') continue;
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return { status: 400, message: 'malformed percent-encoding' };
    }
    if (segment.includes('\0') || segment.includes('\\') || segment.includes('/')) return { status: 400, message: 'forbidden character in path' };
    if (segment === '.' || segment === '..') return { status: 400, message: 'dot segments are not allowed' };
    if (segment.startsWith('.')) return { status: 404, message: 'not found' };
    segments.push(segment);
  }
  return { segments, directory };
}

/** Registers GET and HEAD routes serving `dir` under `options.prefix`. Throws an OPTION error for a bad folder or option. */
export function serveStatic(app: TemplatedApp, dir: string, options: StaticOptions = {}): void {
  let root: string;
  try {
    root = realpathSync(dir);
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new LexiconsError(ErrorCode.OPTION, `static: ${dir} is not a readable directory (${(err as Error).message})`);
  }
  const prefix = `/${(options.prefix ?? '/').replace(/^\/+|\/+$/g, '')}/`.replace('//', '/');
  const cacheControl = options.cacheControl ?? 'no-cache';
  const maxFileBytes = options.maxFileBytes ?? 16 << 20;
  const index = options.index ?? 'index.html';
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes <= 0) throw new LexiconsError(ErrorCode.OPTION, `static: maxFileBytes must be a positive integer, got ${JSON.stringify(maxFileBytes)}`);
  if (index.includes('/') || index.startsWith('.')) throw new LexiconsError(ErrorCode.OPTION, `static: index must be a file name, got ${JSON.stringify(index)}`);

  const handler = (res: HttpResponse, req: HttpRequest): void => {
    if (req.getHeader('upgrade') !== '') {
      req.setYield(true); // a WebSocket upgrade: the ws route's
      return;
    }
    // Everything needed from `req` is read now: it is invalid after the first await.
    const head = req.getMethod().toUpperCase() === 'HEAD';
    const url = req.getUrl();
    const ifNoneMatch = req.getHeader('if-none-match');
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    /** Sends the response; `body` undefined: none (301, 304); HEAD sends `size` (or the body's) as Content-Length only. */
    const reply = (status: string, headers: Record<string, string>, body?: string | Uint8Array, size?: number) => {
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(status);
        for (const [key, value] of Object.entries(headers)) res.writeHeader(key, value);
        if (body === undefined) res.endWithoutBody(size);
        else if (head) res.endWithoutBody(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
        else res.end(body);
      });
    };
    const fail = (status: number, message: string) => reply(`${status} ${STATUS_TEXT[status]}`, { 'Content-Type': TEXT, 'X-Content-Type-Options': 'nosniff' }, `${message}\n`);

    const decoded = decodePath(url.slice(prefix.length - 1));
    if ('status' in decoded) return fail(decoded.status, decoded.message);
    const segments = decoded.directory ? [...decoded.segments, index] : decoded.segments;
    void sendFile(join(root, ...segments)).catch(() => fail(500, 'could not read the file'));

    async function sendFile(path: string): Promise<void> {
      let real: string;
      try {
        real = await realpath(path);
      } catch {
        return fail(404, 'not found');
      }
      if (real !== root && !real.startsWith(root + sep)) return fail(404, 'not found'); // a symlink out of the folder
      const file = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
      if (!file) return fail(404, 'not found');
      try {
        const stat = await file.stat();
        if (stat.isDirectory()) return reply('301 Moved Permanently', { Location: `${url}/` }, '');
        if (!stat.isFile()) return fail(404, 'not found');
        if (stat.size > maxFileBytes) return fail(403, 'file too large to serve');
        const etag = `"${stat.size.toString(36)}-${Math.floor(stat.mtimeMs).toString(36)}"`;
        const headers = { ETag: etag, 'Cache-Control': cacheControl };
        if (matches(ifNoneMatch, etag)) return reply('304 Not Modified', headers);
        const type = { 'Content-Type': CONTENT_TYPES[extname(real).toLowerCase()] ?? 'application/octet-stream', 'X-Content-Type-Options': 'nosniff' };
        if (head) return reply('200 OK', { ...type, ...headers }, undefined, stat.size);
        const body = await file.readFile();
        if (body.byteLength > maxFileBytes) return fail(403, 'file too large to serve'); // it grew meanwhile
        reply('200 OK', { ...type, ...headers }, body);
      } finally {
        await file.close();
      }
    }
  };
  app.get(`${prefix}*`, handler);
  app.head(`${prefix}*`, handler);
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' };

/** Whether an If-None-Match header names the ETag (or is `*`). */
function matches(header: string, etag: string): boolean {
  if (header === '') return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === etag || tag === '*');
}
