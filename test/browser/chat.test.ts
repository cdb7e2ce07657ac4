/**
 * The chat example's web page in real Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core), served by the lexicons server itself on 127.0.0.1: two pages register and chat
 * with each other and show each other as online (Public's presence); both keep working after the
 * server restarts (reconnect + replayed Subscribe + recovery from Public's history); when one page
 * closes, the other's online list drops it; a wrong password shows the server's error; a screenshot is saved to a temp folder. Then the
 * README's 15-line browser example, bundled as is, runs in a page and chats with a Node client.
 *
 * The pages reach the server through a TCP relay on a fixed port (test/helpers/relay.ts): their
 * origin must survive the restart, and uWebSockets.js cannot re-bind its old port at once. Without
 * /usr/bin/chromium (`.ci/run` installs it) the test is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import type { BrowserContext, Page } from 'playwright-core';
import WebSocket from 'ws';
import { createClient } from '../../src/client/index.js';
import type { server as chatServer } from '../../examples/chat/main.js';
import { chromiumSkip, launchChromium, UI_WAIT_MS, type Chromium } from '../helpers/chromium.js';
import { enter, post, shows } from '../helpers/chat-page.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { CHAT_APP, ROOT, spawnCli, startApp, type TestServer } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

/** Functions passed to page.waitForFunction run in the page (this file is compiled without the DOM lib). */
declare const document: { title: string; body: { textContent: string | null }; querySelector(s: string): { getAttribute(n: string): string | null } | null; querySelectorAll(s: string): Iterable<{ textContent: string | null }> };

const skip = chromiumSkip;
if (skip) console.log(`# browser test skipped: ${skip}`);

/** Waits until the page's online list (Public's presence) is exactly `emails`. */
function online(page: Page, emails: string[]): Promise<unknown> {
  const want = JSON.stringify([...emails].sort());
  return page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('#members li')].map((li) => li.textContent)) === w, want, { timeout: UI_WAIT_MS });
}

function connected(page: Page): Promise<unknown> {
  return page.waitForFunction(() => document.querySelector('#state')?.getAttribute('data-state') === 'open', undefined, { timeout: UI_WAIT_MS });
}

describe('chat page in Chromium', { skip, timeout: 300_000 }, () => {
  // Not suiteApp: the first test restarts the server on the same data folder, so the suite owns
  // the folder (and the browser profile) and the hooks take them down in reverse order.
  let data: TempDir;
  let srv: TestServer;
  let relay: Relay;
  let browser: Chromium;
  let context: BrowserContext;
  let url: string;
  const t0 = performance.now();

  before(async () => {
    data = await tempDir('lexicons-chat-');
    srv = await startApp(CHAT_APP, { data: data.path });
    relay = await startRelay(srv.port);
    url = `http://127.0.0.1:${relay.port}/`;
    browser = await launchChromium();
    context = browser.context;
  });
  after(async () => {
    await browser?.[Symbol.asyncDispose]();
    await relay?.close();
    await srv?.stop();
    await data?.[Symbol.asyncDispose]();
    console.log(`# browser test: ${Math.round(performance.now() - t0)} ms`);
  });

  it('two pages register and chat with each other; both keep working after a server restart', async () => {
    const [ann, bob] = [await context.newPage(), await context.newPage()];
    const errors: string[] = [];
    for (const page of [ann, bob]) page.on('pageerror', (err) => errors.push(err.message));
    await Promise.all([ann.goto(url), bob.goto(url)]);
    await enter(ann, 'Register', 'ann@example.com', 'ann password');
    await enter(bob, 'Register', 'bob@example.com', 'bob password');
    await Promise.all([connected(ann), connected(bob)]);
    const both = ['ann@example.com', 'bob@example.com'];
    await Promise.all([online(ann, both), online(bob, both)]);
    await post(ann, 'hello from ann');
    await Promise.all([shows(bob, 'hello from ann'), shows(ann, 'hello from ann')]);
    await post(bob, 'hi ann');
    await shows(ann, 'hi ann');
    assert.equal(await ann.locator('#messages li.mine').count(), 1, 'ann sees her own message once, as hers');

    await srv.stop();
    await ann.waitForFunction(() => document.querySelector('#state')?.getAttribute('data-state') !== 'open', undefined, { timeout: UI_WAIT_MS });
    srv = await startApp(CHAT_APP, { data: data.path });
    relay.target = srv.port;
    await Promise.all([connected(ann), connected(bob)]);
    await post(bob, 'after the restart');
    await shows(ann, 'after the restart'); // bob's post reached ann: her Subscribe was replayed
    await post(ann, 'me too');
    // Both pages: ann's own copy can come after bob's, and the count below is of ann's list.
    await Promise.all([shows(bob, 'me too'), shows(ann, 'me too')]);
    assert.equal(await ann.locator('#messages li').count(), 4, 'the history is not shown twice after the reconnect');
    await Promise.all([online(ann, both), online(bob, both)]); // presence rebuilt by the new server
    assert.deepEqual(errors, []);

    // Kept after the run (not disposed): the path is printed for a look at the page.
    const shot = join((await tempDir('lexicons-screenshot-')).path, 'chat.png');
    await ann.screenshot({ path: shot, fullPage: true });
    const { size } = await stat(shot);
    const png = await readFile(shot);
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');
    assert.ok(size > 10_000, `screenshot of ${size} bytes`);
    console.log(`# screenshot: ${shot} (${size} bytes)`);

    // Closing bob's page closes its socket cleanly (1001): his session ends at once, and ann's list
    // drops him within a presence batch (100 ms), long before resumeGraceSeconds.
    const closedAt = performance.now();
    await bob.close();
    await online(ann, ['ann@example.com']);
    assert.ok(performance.now() - closedAt < 60_000, 'the leave arrives well within the 120 s grace period');
    await ann.close();
  });

  it('shows the server\'s error for a wrong password', async () => {
    const page = await context.newPage();
    await page.goto(url);
    await enter(page, 'Login', 'ann@example.com', 'not her password');
    const error = page.locator('#login-error');
    await error.waitFor({ state: 'visible', timeout: UI_WAIT_MS });
    assert.equal(await error.textContent(), 'Authentication failed: Login rejected the credentials');
    assert.equal(await page.locator('#chat').isHidden(), true);
  });

  it("runs the README's browser example as written", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Client'));
    const snippet = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(snippet, 'the README has a ts block under ## Client');
    assert.ok(snippet.split('\n').filter(Boolean).length <= 15, 'at most 15 lines');
    await using folder = await tempDir('lexicons-readme-page-');
    const dir = folder.path;
    // The snippet's `import type { server } from './main.js'` is erased; `lexicons/client` is this package.
    await build({
      stdin: { contents: snippet, loader: 'ts', resolveDir: dir, sourcefile: 'readme-snippet.ts' },
      alias: { 'lexicons/client': join(ROOT, 'src', 'client', 'index.ts') },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      outfile: join(dir, 'snippet.js'),
      logLevel: 'silent',
    });
    await writeFile(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><input><script type="module" src="snippet.js"></script>\n');
    await using pageData = await tempDir();
    await using page = await spawnCli([CHAT_APP, '--port', '0', '--host', '127.0.0.1', '--data', pageData.path, '--static', dir]);
    const other = createClient<typeof chatServer>({ url: page.url, WebSocket, headers: { Register: { email: 'ann@example.com', password: 'correct horse' } } });
    await other.call('Subscribe', { channel: 'Public' });
    const tab = await context.newPage();
    const errors: string[] = [];
    tab.on('pageerror', (err) => errors.push(err.message));
    await tab.goto(`http://127.0.0.1:${page.port}/`);
    await tab.waitForFunction(() => document.title === 'open', undefined, { timeout: UI_WAIT_MS });
    await other.call('CreateChatMessage', { channel: 'Public', content: 'from node' });
    await tab.waitForFunction(() => document.body.textContent?.includes('from node'), undefined, { timeout: UI_WAIT_MS });
    const received = new Promise((resolve) => other.on('CreateChatMessage', (m) => m?.content === 'from the page' && resolve(m)));
    await tab.fill('input', 'from the page');
    await tab.press('input', 'Enter'); // commits the value: a change event
    await tab.locator('input').blur();
    await received;
    assert.deepEqual(errors, []);
    other.close();
  });
});
