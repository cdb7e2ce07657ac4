/**
 * collectGarbage (storage/collect-garbage.ts): a full GC without `--expose-gc`, that leaves no
 * global `gc` behind. The start path calls it after a large CSV load (bench/key-memory.ts
 * measures what it returns).
 */
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { collectGarbage } from '../../src/storage/collect-garbage.js';

describe('collectGarbage', () => {
  it('collects an unreachable object and exposes no global gc', async () => {
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'the test runs without --expose-gc');
    const ref = ((): WeakRef<object> => new WeakRef({ payload: new Array(1000).fill(1) }))();
    await tick(); // a WeakRef's target is kept until the job that created it ends
    collectGarbage();
    assert.equal(ref.deref(), undefined, 'the object was collected');
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'no global gc afterwards');
  });
});
