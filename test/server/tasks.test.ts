/**
 * Tasks against a real server: startup tasks in priority order (async ones awaited) before the
 * first connection, interval tasks re-reading `set()`/`timer()` and surviving a throw, shutdown
 * tasks and hooks before the tables are written.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TestClient } from '../helpers/client.js';
import { fixture, startApp } from '../helpers/server.js';

async function events(c: TestClient): Promise<string[]> {
  return ((await c.call({ Events: {} })) as [{ Events: string[] }])[0].Events;
}

describe('tasks', { timeout: 30_000 }, () => {
  it('runs startup, interval and shutdown tasks in order', async () => {
    await using srv = await startApp(fixture('tasks-app'), { workers: 1 });
    await using c = await TestClient.connect(srv.url);
    const first = await events(c);
    assert.deepEqual(first.slice(0, 3), ['startup:first(priority 0)', 'startup:slow(priority 1)', 'onStart']);

    // Interval tasks repeat; Tick throws on its second run and keeps running afterwards.
    let seen = first;
    while (seen.filter((e) => e === 'tick').length < 3 || !seen.includes('timed')) seen = await events(c);
    const failure = await srv.waitForLog((r) => r.status === 'TASK-ERROR' && r.data.task === 'Tick');
    assert.equal(failure.data.message, 'tick failed once');
    const [stats] = (await c.call({ TaskStats: {} })) as [{ TaskStats: { tickRuns: number; tickSetCalls: number; timerCalls: number } }];
    // set() is read once before the first run and again after every run.
    assert.ok(stats.TaskStats.tickSetCalls >= stats.TaskStats.tickRuns, JSON.stringify(stats));
    assert.ok(stats.TaskStats.timerCalls >= 2, 'timer() (the later name of set) drives Timed');
    await c.close();

    await srv.stop();
    const csv = await readFile(join(srv.data, 'TaskLog.csv'), 'utf8');
    const rows = csv.trim().split('\n').slice(1).map((line) => line.split(',').at(-1));
    assert.deepEqual(rows.slice(-3), ['shutdown:early(priority 0)', 'shutdown:last(priority 5)', 'onShutdown']);
  });
});
