/**
 * Real Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core, with
 * the flags that keep it off the network and a fresh profile per launch. Without the binary the
 * tests are skipped with the reason (`.ci/run` installs it).
 */
import { existsSync } from 'node:fs';
import type { BrowserContext } from 'playwright-core';
import { tempDir } from './temp-dir.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** false when Chromium is there, else the reason to skip (printed once by the caller). */
export const chromiumSkip: false | string = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (Debian's chromium package; .ci/run installs it)`;

/** A Chromium context and its profile folder; disposing closes the browser, then removes the folder. */
export interface Chromium extends AsyncDisposable {
  readonly context: BrowserContext;
}

/** A browser context on a fresh user-data-dir; `extraHTTPHeaders` go with every request. */
export async function launchChromium(options: { extraHTTPHeaders?: Record<string, string> } = {}): Promise<Chromium> {
  const { chromium } = await import('playwright-core');
  const profile = await tempDir('lexicons-chromium-');
  try {
    const context = await chromium.launchPersistentContext(profile.path, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, ...options });
    return {
      context,
      async [Symbol.asyncDispose]() {
        await context.close();
        await profile[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await profile[Symbol.asyncDispose]();
    throw err;
  }
}

/**
 * How long a browser test waits for the page to show something. Generous: on 2 shared cores with
 * other suites running, Chromium's own start and first paint took over 15 s (a test failed once
 * that way); a page that never shows it still fails.
 */
export const UI_WAIT_MS = 45_000;
