/**
 * The Python literal parser (python-literal.ts) on its own: what Python's repr() writes for lists,
 * sets and tuples of scalars, and an exact message with the offset for what it is not.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLiteral } from '../../src/storage/python-literal.js';

describe('parseLiteral', () => {
  it('reads lists, sets, tuples and set() of str, int, float, bool and None', () => {
    assert.deepEqual(parseLiteral("['a', \"b\"]"), ['a', 'b']);
    assert.deepEqual(parseLiteral('{1, 2}'), [1, 2], 'a set keeps its written order (dedup is the codec’s)');
    assert.deepEqual(parseLiteral('(True,)'), [true]);
    assert.deepEqual(parseLiteral('  set()  '), []);
    assert.deepEqual(parseLiteral('[]'), []);
    assert.deepEqual(parseLiteral('[None, False, -1, +2.5, .5, 1e-05, 1_000]'), [null, false, -1, 2.5, 0.5, 1e-5, 1000]);
    assert.deepEqual(parseLiteral("[u'x', U\"y\"]"), ['x', 'y'], 'Python 2 unicode prefixes');
  });

  it('decodes every escape Python writes, and keeps unknown escapes literally', () => {
    assert.deepEqual(parseLiteral(String.raw`['\\ \' \" \n \r \t \a \b \f \v']`), ['\\ \' " \n \r \t \x07 \b \f \v']);
    assert.deepEqual(parseLiteral(String.raw`['\x41\u00e9\U0001F389\101\0']`), ['Aé🎉A\0']);
    assert.deepEqual(parseLiteral(String.raw`['\q']`), ['\\q']);
    assert.deepEqual(parseLiteral("['line\\\ncontinued']"), ['linecontinued'], 'a backslash-newline is a line continuation');
  });

  it('rejects what is not such a literal, naming the problem and its offset', () => {
    const cases: Array<[string, string]> = [
      ['', 'expected [, { or ( at offset 0'],
      ['a,b', 'expected [, { or ( at offset 0'],
      ['{}', '{} is a dict, not a set at offset 2'],
      ["{'a': 1}", 'expected , or } at offset 4'],
      ["['a'", 'expected , or ] at offset 4'],
      ["['open]", 'unterminated string at offset 7'],
      ["['a'] + ['b']", 'trailing text at offset 6'],
      ['set() x', 'trailing text at offset 6'],
      ["['\\x4']", 'bad \\x escape at offset 4'],
      ["['\\U00110000']", 'code point out of range at offset 4'],
      ["['\\", 'unterminated escape at offset 4'],
      ['[inf]', 'unexpected "inf]" at offset 1'],
      ["[__import__('os')]", 'unexpected "__import__" at offset 1'],
    ];
    for (const [text, message] of cases) assert.throws(() => parseLiteral(text), { message }, text);
  });
});
