/**
 * Channel class rules (src/channel-rules.ts): each malformed static is refused with its exact
 * message, and a channel name resolves to its rule (a declared class first, then the first
 * matching `pattern`, else the default: today's behaviour).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelRules, DEFAULT_RULE } from '../../src/channel-rules.js';
import { Channel } from '../../src/index.js';

/** A Channel class named `name` with the given statics. */
function channel(name: string, statics: Record<string, unknown>): typeof Channel {
  const cls = { [name]: class extends Channel {} }[name]!;
  Object.assign(cls, statics);
  return cls;
}

function refused(statics: Record<string, unknown>, message: string): void {
  assert.throws(() => new ChannelRules([channel('Bad', statics)]), (err: Error) => {
    assert.equal(err.message, message);
    return true;
  });
}

describe('Channel rules', () => {
  it('refuses malformed statics with exact messages', () => {
    refused({ history: 5 }, 'Channel Bad: history must be { size?, maxAgeSeconds? }, got 5');
    refused({ history: { size: 5, keep: 1 } }, 'Channel Bad: history.keep is not a history setting (size, maxAgeSeconds)');
    refused({ history: {} }, 'Channel Bad: history needs size and/or maxAgeSeconds');
    refused({ history: { size: 0 } }, 'Channel Bad: history.size must be a positive integer, got 0');
    refused({ history: { maxAgeSeconds: -1 } }, 'Channel Bad: history.maxAgeSeconds must be a positive number, got -1');
    refused({ presence: 'yes' }, 'Channel Bad: presence must be true or false, got "yes"');
    refused({ slowClient: 'close' }, `Channel Bad: slowClient must be 'disconnect' or 'drop', got "close"`);
    refused({ authorize: true }, 'Channel Bad: authorize must be a function ({ db, ws, channel }) => boolean');
    refused({ pattern: '' }, `Channel Bad: pattern must be a non-empty string of at most 256 characters with * wildcards (e.g. 'room:*'), got ""`);
  });

  it('resolves names: declared first, then the first matching pattern, else the default', () => {
    const rules = new ChannelRules([
      channel('Public', { history: { size: 10 }, presence: true }),
      channel('Rooms', { pattern: 'room:*', history: { maxAgeSeconds: 60 }, slowClient: 'drop' }),
      channel('Special', { pattern: 'room:vip*', presence: true }),
      channel('room:exact', {}),
    ]);
    assert.deepEqual(rules.declared, ['Public', 'room:exact']);
    assert.equal(rules.anyHistory, true);
    assert.deepEqual(rules.rule('Public').history, { size: 10 });
    assert.equal(rules.rule('room:vip1').source, 'room:*', 'the first matching pattern wins');
    assert.equal(rules.rule('room:vip1').slowClient, 'drop');
    assert.equal(rules.rule('room:exact').history, null, 'an exact name wins over a pattern');
    assert.equal(rules.rule('lobby'), DEFAULT_RULE);
    assert.deepEqual(rules.historyPolicy('room:42'), { maxAgeSeconds: 60 });
  });
});
