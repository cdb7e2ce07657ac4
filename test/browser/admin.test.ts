/**
 * Issue #12: the admin page of the chat example in real Chromium (Debian's /usr/bin/chromium driven
 * by playwright-core), served by the server on 127.0.0.1 with an admin token (no address is
 * trusted): requests without the token get 401; with it the page shows the tables (ChatMessage,
 * and User with the passwords masked), sorts and pages rows, lists the connections and channels,
 * and its calls chart moves while a raw WebSocket client drives calls. A screenshot is saved to a
 * temp folder. Skipped with the reason without /usr/bin/chromium.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import WebSocket from 'ws';
import { MASK } from '../../src/main/admin-secrets.js';
import { chromiumSkip, launchChromium, UI_WAIT_MS, type Chromium } from '../helpers/chromium.js';
import { TestClient } from '../helpers/client.js';
import { CHAT_APP, startApp, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Functions passed to page.waitForFunction run in the page (this file is compiled without the DOM lib). */
declare const document: { querySelector(s: string): { dataset: Record<string, string | undefined>; textContent: string | null } | null; querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> };

const TOKEN = 'admin-token-for-the-browser-test';
const skip = chromiumSkip;
if (skip) console.log(`# admin page test skipped: ${skip}`);

const creds = (email: string, password: string) => JSON.stringify({ email, password });

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** The texts of the cells matching `selector`. */
async function texts(page: Page, selector: string): Promise<string[]> {
  return page.locator(selector).allTextContents();
}

/** A raw client that keeps one CreateChatMessage call in flight until stopped; counts replies. */
class Load {
  readonly ws: WebSocket;
  replies = 0;
  #running = true;
  constructor(url: string) {
    this.ws = new WebSocket(url, { headers: { Register: creds('load@example.com', 'load password') } });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.send(JSON.stringify({ Subscribe: { channel: 'Public' } }));
    let n = 0;
    this.ws.on('message', () => {
      this.replies++;
      if (this.#running) this.ws.send(JSON.stringify({ CreateChatMessage: { channel: 'Public', content: `load ${n++}` } }));
    });
  }

  stop(): void {
    this.#running = false;
    this.ws.close();
  }
}

describe('admin page in Chromium (issue #12)', { skip, timeout: 300_000 }, () => {
  let srv: TestServer;
  let browser: Chromium;
  let context: BrowserContext;
  let base: string;

  before(async () => {
    srv = await startApp(CHAT_APP, { overrides: { adminTrust: [], adminToken: TOKEN } });
    base = `http://127.0.0.1:${srv.port}`;
    for (const [email, password] of [['ann@example.com', 'ann secret'], ['bob@example.com', 'bob secret']] as const) {
      const c = await TestClient.connect(srv.url, { headers: { Register: creds(email, password) } });
      await c.next();
      await c.close();
    }
    browser = await launchChromium({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    context = browser.context;
  });
  after(async () => {
    await browser?.[Symbol.asyncDispose]();
    await srv?.[Symbol.asyncDispose]();
  });

  it('answers 401 without the token, on the page, its assets and its API', async () => {
    for (const path of ['/admin', '/admin/app.js', '/admin/api/overview', '/admin/api/rows?table=User', '/admin/api/samples']) {
      const r = await get(srv.port, path);
      assert.equal(r.status, 401, path);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="lexicons admin", Basic realm="lexicons admin"/);
      assert.doesNotMatch(r.body, /scrypt|User|ann@/);
    }
    assert.equal((await get(srv.port, '/admin', { authorization: 'Bearer wrong-token-of-the-same-length' })).status, 401);
    // A browser's Basic prompt: any user name, the token as the password.
    const basic = await get(srv.port, '/admin', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` });
    assert.equal(basic.status, 200);
    assert.match(basic.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const rows = JSON.parse((await get(srv.port, '/admin/api/rows?table=User&sort=email', { authorization: `Bearer ${TOKEN}` })).body) as { rows: Array<{ email: string; password: string }> };
    assert.deepEqual(rows.rows.map((r) => [r.email, r.password]), [['ann@example.com', MASK], ['bob@example.com', MASK]]);
    const refused = await get(srv.port, '/admin/api/rows?table=User&sort=password', { authorization: `Bearer ${TOKEN}` });
    assert.equal(refused.status, 400, 'a secret field is never the sort key');
  });

  it('shows the tables with masked passwords, sorts rows, and a calls chart that moves under load; screenshot', async () => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    const res = await page.goto(`${base}/admin`);
    assert.equal(res?.status(), 200);

    // Tables with their row counts.
    await page.waitForFunction(() => document.querySelectorAll('#tables tbody tr').length >= 2, undefined, { timeout: UI_WAIT_MS });
    const names = await texts(page, '#tables tbody tr td:first-child');
    assert.ok(names.includes('ChatMessage') && names.includes('User'), names.join(','));
    const userCount = await page.locator('#tables tbody tr[data-table="User"] td').nth(1).textContent();
    assert.equal(userCount, '2');

    // User rows: passwords masked, sorted by email descending after two clicks on its header.
    await page.click('#tables tbody tr[data-table="User"]');
    await page.waitForFunction(() => (document.querySelector('#rows-table')?.textContent ?? '').startsWith('User'), undefined, { timeout: UI_WAIT_MS });
    await page.click('#rows thead th:has-text("email")');
    await page.waitForFunction(() => document.querySelector('#rows thead th.sorted')?.textContent === 'email', undefined, { timeout: UI_WAIT_MS });
    await page.click('#rows thead th:has-text("email")');
    await page.waitForFunction(() => document.querySelector('#rows thead th.sorted.desc') !== null, undefined, { timeout: UI_WAIT_MS });
    const emailColumn = (await texts(page, '#rows thead th')).indexOf('email') + 1;
    assert.deepEqual(await texts(page, `#rows tbody td:nth-child(${emailColumn})`), ['bob@example.com', 'ann@example.com']);
    assert.deepEqual(await texts(page, '#rows tbody td.secret'), [MASK, MASK]);
    assert.doesNotMatch(await page.content(), /scrypt\$/, 'no password hash reaches the page');

    // The calls chart: flat (no Signal call yet), then moving while the load runs.
    await page.waitForFunction(() => Number(document.querySelector('#chart-calls')?.dataset.points ?? 0) >= 2, undefined, { timeout: UI_WAIT_MS });
    const before = await page.locator('#chart-calls').evaluate((c) => ({ ...(c as unknown as { dataset: Record<string, string> }).dataset }));
    assert.equal(Number(before.max), 0, 'no calls before the load');
    const load = new Load(srv.url);
    await load.start();
    try {
      await page.waitForFunction(() => Number(document.querySelector('#chart-calls')?.dataset.max ?? 0) > 0 && Number(document.querySelector('#chart-delivered')?.dataset.max ?? 0) > 0, undefined, { timeout: UI_WAIT_MS });
      // The connection list shows the load client in #Public.
      await page.waitForFunction(() => [...(document.querySelectorAll('#connections tbody td') as unknown as Array<{ textContent: string | null }>)].some((td) => td.textContent === 'Public'), undefined, { timeout: UI_WAIT_MS });
    } finally {
      load.stop();
    }
    const after = await page.locator('#chart-calls').evaluate((c) => ({ ...(c as unknown as { dataset: Record<string, string> }).dataset }));
    assert.ok(Number(after.max) > 0 && after.max !== before.max, `the calls chart moved: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    assert.ok(load.replies > 1, `${load.replies} replies`);
    assert.ok(Number((await page.locator('#chart-memory').evaluate((c) => (c as unknown as { dataset: Record<string, string> }).dataset.latest)) ?? 0) > 0, 'memory is charted');
    const channels = await texts(page, '#channels tbody td:first-child');
    assert.ok(channels.includes('Public'), channels.join(','));
    assert.deepEqual(errors, []);

    await using shots = await tempDir('lexicons-admin-screenshot-');
    const shot = join(shots.path, 'admin.png');
    await page.screenshot({ path: shot, fullPage: true });
    const { size } = await stat(shot);
    assert.deepEqual([...(await readFile(shot)).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
    assert.ok(size > 20_000, `screenshot of ${size} bytes`);
    console.log(`# admin screenshot: ${shot} (${size} bytes)`);
  });
});
