/**
 * Driving the chat example's web page (examples/chat/web) in a Playwright page: the login form,
 * the post form, and waiting for a message to show. Used by the browser tests on one server and
 * on a cluster (test/browser/chat.test.ts, test/cluster/readme-walkthrough.test.ts).
 */
import type { Page } from 'playwright-core';
import { UI_WAIT_MS } from './chromium.js';

/** Functions passed to page.waitForFunction run in the page (this file is compiled without the DOM lib). */
declare const document: { querySelectorAll(s: string): Iterable<{ textContent: string | null }> };

/** Registers (or logs in) through the page's form. */
export async function enter(page: Page, action: 'Register' | 'Login', email: string, password: string): Promise<void> {
  await page.fill('#login input[name=email]', email);
  await page.fill('#login input[name=password]', password);
  await page.click(`#login button[value=${action}]`);
}

/** Posts a message through the page's form. */
export async function post(page: Page, content: string): Promise<void> {
  await page.fill('#post input[name=content]', content);
  await page.click('#post button');
}

/** Waits until the page lists a message with this content. */
export function shows(page: Page, content: string): Promise<unknown> {
  return page.waitForFunction((text) => [...document.querySelectorAll('#messages .content')].some((p) => p.textContent === text), content, { timeout: UI_WAIT_MS });
}
