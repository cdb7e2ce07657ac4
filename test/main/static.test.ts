/**
 * serveStatic on a real uWS App on a loopback port, with raw HTTP requests over TCP (a URL
 * parser would resolve `..` and `%2e%2e` before sending): content types, index.html, HEAD, ETag
 * and 304, Cache-Control, traversal attempts (plain, encoded, backslashes, NUL), dotfiles,
 * symlinks out of the folder, the size cap, directories, and coexistence with a ws route and a
 * specific HTTP route on the same app.
 */
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import WebSocket from 'ws';
import { isLexiconsError } from '../../src/errors.js';
import { decodePath, serveStatic } from '../../src/main/static.js';
import { loadUws } from '../../src/main/uws.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends one request exactly as written and reads the response (Content-Length framed). */
function request(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''];
    socket.write(lines.join('\r\n'));
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response to ${method} ${path}`));
    }, 5000);
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...headerLines] = data.subarray(0, end).toString('latin1').split('\r\n');
      const parsed: Record<string, string> = {};
      for (const line of headerLines) {
        const i = line.indexOf(':');
        parsed[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = Number(statusLine!.split(' ')[1]);
      const length = method === 'HEAD' || status === 304 ? 0 : Number(parsed['content-length'] ?? 0);
      if (data.length - end - 4 < length) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status, headers: parsed, body: data.subarray(end + 4, end + 4 + length) });
    });
    socket.on('error', reject);
  });
}

let folder: TempDir;
let dir: string;
let root: string;
let app: TemplatedApp;
let listenSocket: us_listen_socket;
let port: number;
const uws = loadUws();

before(async () => {
  folder = await tempDir('lexicons-static-');
  dir = folder.path;
  root = join(dir, 'web');
  await mkdir(join(root, 'sub'), { recursive: true });
  await writeFile(join(root, 'index.html'), '<!doctype html><title>chat</title>');
  await writeFile(join(root, 'app.js'), 'console.log("app");');
  await writeFile(join(root, 'style.css'), 'body { margin: 0 }');
  await writeFile(join(root, 'data.bin'), Buffer.from([0, 1, 2, 3]));
  await writeFile(join(root, 'sub', 'index.html'), '<p>sub</p>');
  await writeFile(join(root, '.secret'), 'SECRET-DOTFILE');
  await writeFile(join(root, 'big.txt'), 'x'.repeat(5000));
  await writeFile(join(dir, 'outside.txt'), 'SECRET-OUTSIDE');
  await symlink(join(dir, 'outside.txt'), join(root, 'link-out.txt'));
  await symlink(join(root, 'app.js'), join(root, 'link-in.js'));
  app = uws.App();
  app.get('/health', (res) => void res.end('healthy'));
  app.ws('/*', { open: (ws) => void ws.send('welcome') });
  serveStatic(app, root, { maxFileBytes: 4096 });
  await new Promise<void>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return reject(new Error('listen failed'));
      listenSocket = socket;
      port = uws.us_socket_local_port(socket);
      resolve();
    }),
  );
});

after(async () => {
  uws.us_listen_socket_close(listenSocket);
  await folder[Symbol.asyncDispose]();
});

describe('serveStatic', () => {
  it('serves index.html for /, and files with their content types, ETag, Cache-Control and nosniff', async () => {
    const index = await request(port, 'GET', '/');
    assert.equal(index.status, 200);
    assert.equal(index.body.toString(), '<!doctype html><title>chat</title>');
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    assert.match(index.headers.etag ?? '', /^"[0-9a-z]+-[0-9a-z]+"$/);
    const types = await Promise.all(['/app.js', '/style.css', '/data.bin', '/app.js?v=2'].map(async (p) => (await request(port, 'GET', p)).headers['content-type']));
    assert.deepEqual(types, ['text/javascript; charset=utf-8', 'text/css; charset=utf-8', 'application/octet-stream', 'text/javascript; charset=utf-8']);
    assert.equal((await request(port, 'GET', '/sub/')).body.toString(), '<p>sub</p>');
    assert.equal((await request(port, 'GET', '/link-in.js')).body.toString(), 'console.log("app");', 'a symlink inside the folder is served');
  });

  it('answers HEAD with the length and no body, and 304 to a matching If-None-Match', async () => {
    const head = await request(port, 'HEAD', '/app.js');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String('console.log("app");'.length));
    assert.equal(head.body.length, 0);
    const etag = head.headers.etag!;
    const cached = await request(port, 'GET', '/app.js', { 'If-None-Match': etag });
    assert.equal(cached.status, 304);
    assert.equal(cached.headers.etag, etag);
    assert.equal((await request(port, 'GET', '/app.js', { 'If-None-Match': `"other", W/${etag}` })).status, 304);
    assert.equal((await request(port, 'GET', '/app.js', { 'If-None-Match': '"other"' })).status, 200);
  });

  it('refuses traversal: dot segments, encoded dots and slashes, backslashes, NUL, malformed encodings', async () => {
    const attempts = [
      '/../outside.txt',
      '/sub/../../outside.txt',
      '/%2e%2e/outside.txt',
      '/%2E%2E%2Foutside.txt',
      '/sub/..%2f..%2foutside.txt',
      '/..\\outside.txt',
      '/%5c..%5coutside.txt',
      '/app.js%00.html',
      '/%00',
      '/%zz',
      '/./app.js',
    ];
    for (const path of attempts) {
      const res = await request(port, 'GET', path);
      assert.equal(res.status, 400, `${path}: ${res.status} ${res.body.toString()}`);
      assert.match(res.body.toString(), /^(dot segments are not allowed|forbidden character in path|malformed percent-encoding)\n$/, path);
    }
  });

  it('does not serve dotfiles, symlinks out of the folder, missing files or files over the cap', async () => {
    for (const [path, status] of [
      ['/.secret', 404],
      ['/sub/%2esecret', 404],
      ['/link-out.txt', 404],
      ['/nope.txt', 404],
      ['/big.txt', 403],
    ] as const) {
      const res = await request(port, 'GET', path);
      assert.equal(res.status, status, path);
      assert.ok(!res.body.toString().includes('SECRET'), path);
    }
  });

  it('redirects a directory without its slash', async () => {
    const res = await request(port, 'GET', '/sub');
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, '/sub/');
  });

  it('leaves WebSocket upgrades to the ws route and specific routes to theirs', async () => {
    assert.equal((await request(port, 'GET', '/health')).body.toString(), 'healthy');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const [message] = await Promise.all([new Promise((resolve, reject) => (ws.once('message', (m) => resolve(m.toString())), ws.once('error', reject)))]);
    assert.equal(message, 'welcome');
    ws.close();
    assert.equal((await request(port, 'GET', '/')).status, 200);
  });

  it('checks its options and folder', () => {
    assert.throws(() => serveStatic(app, join(dir, 'missing')), (err: unknown) => isLexiconsError(err, 'OPTION') && err.message.startsWith(`static: ${join(dir, 'missing')} is not a readable directory`));
    assert.throws(() => serveStatic(app, root, { maxFileBytes: 0 }), { message: 'static: maxFileBytes must be a positive integer, got 0' });
    assert.throws(() => serveStatic(app, root, { index: '../x' }), { message: 'static: index must be a file name, got "../x"' });
  });

  it('decodes paths segment by segment', () => {
    assert.deepEqual(decodePath('/a/b%20c/'), { segments: ['a', 'b c'], directory: true });
    assert.deepEqual(decodePath(''), { segments: [], directory: true });
    assert.deepEqual(decodePath('/a%2fb'), { status: 400, message: 'forbidden character in path' });
  });
});
