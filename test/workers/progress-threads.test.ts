/**
 * The progress slot's committed-units word (src/workers/progress.ts) across threads: workers run
 * units as fast as they can (store the count of finished units, enter user code, leave, check the
 * abort), while the main thread aborts them at random moments with the watchdog's compare-and-swap.
 * Whenever the main thread wins the abort, the count it reads must be exactly the units before
 * the one running (never one short: a committed unit would run again; never one more: a unit not
 * committed would be lost), and the worker must agree on which unit it was running.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { createProgressBuffer, ProgressReader, ProgressWriter } from '../../src/workers/progress.js';
import { spawnTask } from '../helpers/threads.js';

const RUNNER = new URL('../fixtures/progress/unit-runner.js', import.meta.url);

describe('progress slot: committed units', { timeout: 300_000 }, () => {
  it('counts the units a writer marked done, resets to 0', () => {
    const buffer = createProgressBuffer(2);
    const reader = new ProgressReader(buffer);
    const writer = new ProgressWriter(buffer, 1);
    reader.reset(1);
    assert.equal(reader.done(1), 0);
    writer.done(3);
    assert.equal(reader.done(1), 3);
    assert.equal(reader.done(0), 0, 'other slots untouched');
    reader.reset(1);
    assert.equal(reader.done(1), 0);
  });

  it('4 threads x 10 rounds: the count read after a won abort is exactly the running unit', async () => {
    const threads = 4;
    let aborts = 0;
    let past0 = 0;
    for (let round = 0; round < 10; round++) {
      const buffer = createProgressBuffer(threads);
      const reader = new ProgressReader(buffer);
      for (let slot = 0; slot < threads; slot++) reader.reset(slot);
      const tasks = Array.from({ length: threads }, (_, slot) => spawnTask<number>(RUNNER, { buffer, slot, seed: round * threads + slot + 1 }));
      const claimed = new Map<number, { unit: number; done: number }>();
      const deadline = Date.now() + 60_000;
      let spins = 0;
      while (claimed.size < threads) {
        assert.ok(Date.now() < deadline, 'workers never entered user code');
        for (let slot = 0; slot < threads; slot++) {
          // Let the workers get some units in (a random moment), then claim with the watchdog's CAS.
          if (claimed.has(slot) || reader.unit(slot) < ((round * 7 + slot * 13) % 50)) continue;
          if (reader.tryAbort(slot, Date.now(), -1)) claimed.set(slot, { unit: reader.unit(slot), done: reader.done(slot) });
        }
        if (++spins % 1000 === 0) await turn();
      }
      const ran = await Promise.all(tasks.map((t) => t.done));
      for (let slot = 0; slot < threads; slot++) {
        const { unit, done } = claimed.get(slot)!;
        assert.equal(done, unit, `slot ${slot}: units committed before the running one`);
        assert.equal(ran[slot], unit, `slot ${slot}: the worker stopped in the unit the main thread saw`);
        aborts++;
        if (unit > 0) past0++;
      }
      await Promise.all(tasks.map((t) => t.exited));
    }
    assert.equal(aborts, 40);
    assert.ok(past0 > 0, 'some aborts landed after the first unit');
  });
});
