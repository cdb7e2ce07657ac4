/**
 * The README's *Cluster* walkthrough, run as written: its shell block (a `redis-server`, then three
 * nodes of the chat example) in `bash`, with only the ports and the folder swapped for free ones;
 * then what the text around it promises, in real Chromium pages served by the nodes: register on
 * one node, log in on another with the same account, chat across nodes; `kill -9` a node, start
 * it again with the same command: it catches up and its page reconnects and recovers what was
 * said meanwhile; `/health` shows the three nodes; the README's stop command stops everything.
 *
 * Skipped (with the reason) without /usr/bin/redis-server or /usr/bin/chromium; `.ci/run`
 * installs both.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { redisSkip } from '../../bench/loadgen/redis-server.js';
import { chromiumSkip, launchChromium, UI_WAIT_MS, type Chromium } from '../helpers/chromium.js';
import { enter, post, shows } from '../helpers/chat-page.js';
import { expireAfter } from '../helpers/client.js';
import { freePort, ROOT } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

declare const document: { querySelector(s: string): { getAttribute(n: string): string | null } | null; querySelectorAll(s: string): Iterable<{ textContent: string | null }> };

const skip = redisSkip || chromiumSkip;
if (skip) console.log(`# README cluster walkthrough skipped: ${skip}`);

/** The README's *Cluster* section: its shell block, the loop body that starts node `$i`, and its stop command. */
async function walkthrough(): Promise<{ block: string; nodeLine: string; stop: string }> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Cluster');
  assert.ok(start > 0, 'the README has a ## Cluster section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the Cluster section has a sh block');
  const nodeLine = /\bdo\n([\s\S]*?)\ndone/.exec(block)?.[1];
  assert.ok(nodeLine, 'the block starts the nodes in a for loop');
  const stop = /Stop everything with\s+`([^`]+)`/.exec(section)?.[1];
  assert.ok(stop, 'the section says how to stop everything');
  return { block, nodeLine, stop };
}

/** A port prefix p such that p1, p2, p3 (the README's `500$i` pattern) are free loopback ports. */
async function freePrefix(): Promise<string> {
  for (;;) {
    const prefix = String(2000 + Math.floor(Math.random() * 4000));
    const probes = [1, 2, 3].map((i) => createServer().listen(Number(`${prefix}${i}`), '127.0.0.1'));
    const bound = await Promise.all(probes.map((s) => Promise.race([once(s, 'listening').then(() => true), once(s, 'error').then(() => false)])));
    await Promise.all(probes.filter((_, i) => bound[i]).map((s) => new Promise((resolve) => s.close(resolve))));
    if (bound.every(Boolean)) return prefix;
  }
}

/** Replaces every `from` in `text` (asserting there is one: a README edit must not silently skip a swap). */
function swap(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `the README's walkthrough mentions ${from}`);
  return text.split(from).join(to);
}

/** Pids of processes whose command line mentions `marker` (our temp folder), this process excluded. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Resolves when `check` is true (asked every 100 ms); fails after `ms` of this process's running time (expireAfter). */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  let expired = false;
  const cancel = expireAfter(ms, () => (expired = true));
  try {
    while (!(await check().catch(() => false))) {
      if (expired) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    cancel();
  }
}

async function health(port: number): Promise<{ cluster: { node: string; phase: string; applied: number; nodes: Array<{ node: string; phase: string; gone: boolean }> } }> {
  return (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as never;
}

async function ready(port: number): Promise<boolean> {
  return (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200;
}

function state(page: Page, open: boolean): Promise<unknown> {
  return page.waitForFunction((want) => (document.querySelector('#state')?.getAttribute('data-state') === 'open') === want, open, { timeout: UI_WAIT_MS });
}

describe("README's cluster walkthrough (3 nodes of the chat example on one Redis)", { skip, timeout: 300_000 }, () => {
  let folder: TempDir;
  let shell: ChildProcess;
  let shellOut = '';
  let browser: Chromium;
  let redisPort = 0;
  let ports: number[] = [];
  let nodeLine = '';
  let stop = '';

  before(async () => {
    const readme = await walkthrough();
    folder = await tempDir('lexicons-walkthrough-');
    redisPort = await freePort();
    const prefix = await freePrefix();
    ports = [1, 2, 3].map((i) => Number(`${prefix}${i}`));
    // Only what cannot be kept on a shared machine changes: the fixed ports and folder. The build
    // is the one under test (`npm run build` ran before the suite).
    const local = (text: string): string => swap(swap(swap(text, '/tmp/lx', folder.path), '6390', String(redisPort)), '500$i', `${prefix}$i`);
    const block = local(swap(readme.block, 'npm run build\n', ''));
    nodeLine = local(readme.nodeLine);
    stop = swap(readme.stop, '6390', String(redisPort));
    // `read` holds the shell (and its jobs %1..%3) until the test writes a line: then the README's stop command runs.
    shell = spawn('bash', ['-c', `${block}\nread -r _\n${stop}\nwait\n`], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    shell.stdout!.on('data', (d) => (shellOut += d));
    shell.stderr!.on('data', (d) => (shellOut += d));
    for (const port of ports) await until(`node on ${port} ready\n${shellOut.slice(-3000)}`, 90_000, () => ready(port));
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.[Symbol.asyncDispose]();
    if (shell && shell.exitCode === null && shell.signalCode === null) {
      try {
        process.kill(-shell.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (folder) {
      for (const pid of processesWith(folder.path)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      spawnSync('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave'], { stdio: 'ignore' });
      await folder[Symbol.asyncDispose]();
    }
  });

  it('register on one node, log in on another, chat; kill -9 a node and start it again; stop', async () => {
    const context = browser.context;
    const [ann, annElsewhere, bob] = [await context.newPage(), await context.newPage(), await context.newPage()];
    const errors: string[] = [];
    for (const page of [ann, annElsewhere, bob]) page.on('pageerror', (err) => errors.push(err.message));
    const [p1, p2, p3] = ports as [number, number, number];

    await ann.goto(`http://127.0.0.1:${p1}/`);
    await enter(ann, 'Register', 'ann@example.com', 'ann password');
    await state(ann, true);
    // The account is a row of the cluster's users table: node 2 has it once it applied node 1's record.
    const registered = (await health(p1)).cluster.applied;
    await until('node 2 applied the registration', 30_000, async () => (await health(p2)).cluster.applied >= registered);
    await annElsewhere.goto(`http://127.0.0.1:${p2}/`);
    await enter(annElsewhere, 'Login', 'ann@example.com', 'ann password');
    await state(annElsewhere, true);
    await bob.goto(`http://127.0.0.1:${p3}/`);
    await enter(bob, 'Register', 'bob@example.com', 'bob password');
    await state(bob, true);

    await post(ann, 'hello from node 1');
    await Promise.all([shows(annElsewhere, 'hello from node 1'), shows(bob, 'hello from node 1')]);
    await post(bob, 'hi from node 3');
    await Promise.all([shows(ann, 'hi from node 3'), shows(annElsewhere, 'hi from node 3')]);

    // kill -9 node 1; what is said meanwhile reaches ann's page once node 1 is back (recovery).
    const node1 = processesWith(`${folder.path}/n1`);
    assert.equal(node1.length, 1, `one process runs node 1: ${node1.join(', ')}`);
    process.kill(node1[0]!, 'SIGKILL');
    await state(ann, false);
    await post(bob, 'while node 1 was down');
    await shows(annElsewhere, 'while node 1 was down');
    // "start it again with the same command": the loop's line with i=1, from the README's folder.
    const restartLog = openSync(join(folder.path, 'n1-restart.log'), 'a');
    spawn('bash', ['-c', `i=1\n${nodeLine}\n`], { cwd: ROOT, stdio: ['ignore', restartLog, restartLog], detached: true }).unref();
    await until(`node 1 ready again\n${readFileSync(join(folder.path, 'n1-restart.log'), 'utf8').slice(-3000)}`, 90_000, () => ready(p1));
    await state(ann, true);
    await shows(ann, 'while node 1 was down');
    await post(ann, 'back on node 1');
    // Her own post reaches her page through the channel too: wait for it there before counting.
    await Promise.all([shows(ann, 'back on node 1'), shows(bob, 'back on node 1'), shows(annElsewhere, 'back on node 1')]);
    assert.equal(await ann.locator('#messages li').count(), 4, 'ann sees each of the 4 messages once after the reconnect');

    const view = (await health(p3)).cluster;
    assert.equal(view.node, 'n3');
    assert.deepEqual(view.nodes.map((n) => n.node).sort(), ['n1', 'n2', 'n3']);
    assert.ok(view.nodes.every((n) => !n.gone), JSON.stringify(view.nodes));
    assert.deepEqual(errors, []);

    // The README's stop command (kill %1 %2 %3; redis-cli ... shutdown): job %1 is the killed node 1,
    // so its restarted process is stopped by hand, as a reader would.
    for (const pid of processesWith(`${folder.path}/n1`)) process.kill(pid, 'SIGTERM');
    const exited = once(shell, 'close');
    shell.stdin!.end('\n');
    await exited;
    await until('every node and redis stopped', 30_000, async () => processesWith(folder.path).length === 0 && spawnSync('redis-cli', ['-p', String(redisPort), 'ping']).status !== 0);
  });
});
