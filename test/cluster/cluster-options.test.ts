/**
 * Cluster mode's options at the edge (issue #14): the Server's `cluster` option, `--redis` /
 * `--node-id`, and LEXICONS_REDIS / LEXICONS_NODE_ID, each refused with its exact message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand, type StartCommand } from '../../src/main/cli.js';
import { resolveOps, validateCluster } from '../../src/ops-options.js';
import { Server } from '../../src/server.js';

describe('cluster options', () => {
  it('refuses a bad cluster option with exact messages', () => {
    const refuse = (value: unknown, message: string): void => assert.throws(() => new Server({ cluster: value as never }), { code: 'OPTION', message });
    refuse('redis://x', 'cluster must be an object { redis, nodeId? }, got a string of 9 characters');
    refuse({ redis: 'http://h:1' }, 'cluster.redis must be a redis://host:port URL, got "http://h:1"');
    refuse({ redis: 'redis://user:secret@' }, 'cluster.redis must be a redis://host:port URL, got "redis://***@"');
    refuse({ redis: 'redis://h:1', nodeId: 'a b' }, `cluster.nodeId must be 1 to 64 letters, digits, '_', '.' or '-', got "a b"`);
    refuse({ redis: 'redis://h:1', node: 'a' }, 'cluster.node is not a known cluster option (known: redis, nodeId)');
    assert.deepEqual(validateCluster({ redis: 'redis://h:1', nodeId: 'n1' }), { redis: 'redis://h:1', nodeId: 'n1' });
  });

  it('--redis and --node-id on the command line', () => {
    const start = parseCommand(['start', './main', '--redis', 'redis://127.0.0.1:6390', '--node-id', 'n1']) as StartCommand;
    assert.deepEqual(start.overrides.cluster, { redis: 'redis://127.0.0.1:6390', nodeId: 'n1' });
    assert.throws(() => parseCommand(['start', '--node-id', 'n1']), { message: '--node-id needs --redis (it names this node of a cluster)' });
    assert.throws(() => parseCommand(['start', '--redis', 'localhost:6379']), { message: '--redis must be a redis://host:port URL, got "localhost:6379"' });
    assert.throws(() => parseCommand(['check', '--redis', 'redis://h:1']), { message: '--redis does not apply to check' });
  });

  it('resolves the run override, then the option, then LEXICONS_REDIS, with a default node id', () => {
    const env = { LEXICONS_REDIS: 'redis://env:1', LEXICONS_NODE_ID: 'e1' };
    assert.deepEqual(resolveOps({}, {}, 'h', 1, env).cluster, { redis: 'redis://env:1', nodeId: 'e1' });
    assert.deepEqual(resolveOps({ cluster: { redis: 'redis://o:1', nodeId: 'o1' } }, {}, 'h', 1, env).cluster, { redis: 'redis://o:1', nodeId: 'o1' });
    assert.deepEqual(resolveOps({}, { cluster: { redis: 'redis://r:1', nodeId: 'r1' } }, 'h', 1, env).cluster, { redis: 'redis://r:1', nodeId: 'r1' });
    assert.equal(resolveOps({}, {}, 'h', 1, {}).cluster, null);
    assert.match(resolveOps({}, {}, 'h', 1, { LEXICONS_REDIS: 'redis://env:1' }).cluster!.nodeId, new RegExp(`-${process.pid}$`));
  });
});
