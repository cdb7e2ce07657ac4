/**
 * `trustProxy` through a real proxy hop: a small Node HTTP proxy (node:http `upgrade` and
 * `request` events, sockets piped to the server) that appends the client's address to
 * `X-Forwarded-For`, as nginx does. Clients bind distinct loopback addresses (127.0.0.2,
 * 127.0.0.3, ...) so the proxy sees them apart; the server sees every proxied connection come
 * from the proxy (127.0.0.1).
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server as HttpServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, forSuite, startApp, suiteApp } from '../helpers/server.js';

const APP = fixture('ops-app');

interface Proxy extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
}

/** A reverse proxy on 127.0.0.1 to `port` that appends the peer address to X-Forwarded-For; disposing closes it. */
async function startProxy(port: number): Promise<Proxy> {
  const forwarded = (existing: string | string[] | undefined, peer: string | undefined): string =>
    [...(existing === undefined ? [] : [existing].flat()), peer ?? ''].filter(Boolean).join(', ');
  const proxy: HttpServer = createServer((req, res) => {
    const headers = { ...req.headers, 'x-forwarded-for': forwarded(req.headers['x-forwarded-for'], req.socket.remoteAddress) };
    const upstream = request({ host: '127.0.0.1', port, localAddress: '127.0.0.1', method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on('upgrade', (req, client, head) => {
    const upstream = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' }, () => {
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (req.rawHeaders[i]!.toLowerCase() !== 'x-forwarded-for') text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      }
      text += `X-Forwarded-For: ${forwarded(req.headers['x-forwarded-for'], (client as Socket).remoteAddress)}\r\n\r\n`;
      upstream.write(text);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxyPort = (proxy.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${proxyPort}`,
    port: proxyPort,
    [Symbol.asyncDispose]: () => {
      proxy.closeAllConnections();
      return new Promise((resolve) => proxy.close(() => resolve()));
    },
  };
}

function login(url: string, from: string, name: string, extra: Record<string, string> = {}): Promise<TestClient> {
  return TestClient.connect(url, { headers: { Token: JSON.stringify({ token: `good:${name}` }), ...extra }, ws: { localAddress: from } });
}

async function whoami(c: TestClient): Promise<string> {
  const [reply] = (await c.call({ Whoami: {} })) as [{ Whoami: { address: string } }];
  return reply.Whoami.address;
}

describe('trustProxy behind a real proxy hop', { timeout: 30_000 }, () => {
  const srv = suiteApp(APP, { overrides: { trustProxy: ['127.0.0.1'], adminTrust: ['127.0.0.1'] } });
  const proxy = forSuite('the proxy', () => startProxy(srv.port));

  it('two clients behind one proxy get their own addresses and separate login budgets (3 per minute)', async () => {
    for (let i = 0; i < 3; i++) {
      await using a = await login(proxy.url, '127.0.0.2', 'ann');
      assert.equal(await whoami(a), '127.0.0.2');
    }
    await assert.rejects(login(proxy.url, '127.0.0.2', 'ann'), /HTTP 429/, "ann's fourth attempt within the minute");
    await using b = await login(proxy.url, '127.0.0.3', 'bob');
    assert.equal(await whoami(b), '127.0.0.3', "bob's budget is his own");
    const connect = await srv.waitForLog((r) => r.status === 'CONNECT' && r.data.address === '127.0.0.3');
    assert.equal(connect.data.address, '127.0.0.3', 'the logs carry the client address');
    const limit = await srv.waitForLog((r) => r.status === 'LIMIT');
    assert.equal(limit.data.address, '127.0.0.2');
  });

  it('takes the rightmost address the proxy added, never one the client wrote', async () => {
    await using c = await TestClient.connect(proxy.url, { headers: { 'X-Forwarded-For': '203.0.113.7, 10.0.0.1' }, ws: { localAddress: '127.0.0.4' } });
    assert.equal(await whoami(c), '127.0.0.4');
  });

  it("ignores the X-Forwarded-For of a peer that is not a trusted proxy", async () => {
    await using c = await TestClient.connect(srv.url, { headers: { 'X-Forwarded-For': '203.0.113.9' }, ws: { localAddress: '127.0.0.5' } });
    assert.equal(await whoami(c), '127.0.0.5');
  });

  it('/metrics through the proxy is judged by the client address: 401 for 127.0.0.2, 200 for 127.0.0.1', async () => {
    const status = (localAddress: string) =>
      new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.1', port: proxy.port, path: '/metrics', localAddress }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
    assert.equal(await status('127.0.0.2'), 401);
    assert.equal(await status('127.0.0.1'), 200);
  });
});

describe('the trust list behind a trusted proxy', { timeout: 30_000 }, () => {
  it('admits 127.0.0.2 (listed) and refuses 127.0.0.3 with 403, both through the proxy', async () => {
    await using srv = await startApp(APP, { trust: ['127.0.0.2'], overrides: { trustProxy: ['127.0.0.0/30'] } });
    await using proxy = await startProxy(srv.port);
    {
      await using listed = await TestClient.connect(proxy.url, { ws: { localAddress: '127.0.0.2' } });
      assert.equal(await whoami(listed), '127.0.0.2');
    }
    await assert.rejects(TestClient.connect(proxy.url, { ws: { localAddress: '127.0.0.3' } }), /HTTP 403/);
    const denied = await srv.waitForLog((r) => r.status === 'UNTRUSTED-SOURCE-DENIED');
    assert.equal(denied.data.address, '127.0.0.3');
  });
});
