/**
 * The trim point of the commit stream (main/cluster-registry.ts keepFrom): below the published
 * snapshot and every node that is not gone, less the conflict window; gone nodes do not hold it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keepFrom, type NodeView } from '../../src/main/cluster-registry.js';

function node(name: string, snapshotted: number, gone = false): NodeView {
  return { node: name, phase: 'live', applied: snapshotted + 5, snapshotted, heartbeat: 0, gone };
}

describe('cluster registry: where the commit stream may be trimmed', () => {
  it('keeps the window before the lowest of the published snapshot and the nodes not gone', () => {
    assert.equal(keepFrom([node('a', 500), node('b', 300)], 450, 20), 280);
    assert.equal(keepFrom([node('a', 500), node('b', 600)], 450, 20), 430);
  });

  it('a node that is down holds the trim until it is gone', () => {
    assert.equal(keepFrom([node('a', 900), { ...node('b', 100), phase: 'stopped' }], 800, 20), 80);
    assert.equal(keepFrom([node('a', 900), node('b', 100, true)], 800, 20), 780);
    // A node the stream was trimmed past already (`behind`) rejoins from the snapshot: it does not hold it.
    assert.equal(keepFrom([node('a', 900), { ...node('b', 100), phase: 'behind' }], 800, 20), 780);
  });

  it('trims nothing before a snapshot is published or inside the window', () => {
    assert.equal(keepFrom([node('a', 900)], 0, 20), 0);
    assert.equal(keepFrom([node('a', 10)], 15, 20), 0);
  });
});
