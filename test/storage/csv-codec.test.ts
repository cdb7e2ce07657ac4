/**
 * The CSV codec (csv-codec.ts): cells and rows per field type, Python literals in list and set
 * cells, header plans and record errors; text round trips through real files, and pandas reading
 * what we write.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { isLexiconsError } from '../../src/errors.js';
import { formatRecords } from '../../src/storage/csv.js';
import { decodeCell, decodeCollection, decodeRecord, encodeCell, encodeRow, formatFloat, headerOf, planHeader, type Cell } from '../../src/storage/csv-codec.js';
import type { FieldSchema } from '../../src/storage/schema.js';
import { tableOf } from '../fixtures/csv/models.js';
import { roundTripText, TRICKY_STRINGS } from './fixtures/csv-files.js';
import { tempDir } from '../helpers/temp-dir.js';

const item = tableOf('Item');
const f = (name: string): FieldSchema => item.byName.get(name)!;

describe('csv codec: cells', () => {
  test('str cells: null, empty string and tricky text round-trip through a real file', async () => {
    const records: Cell[][] = [['pk', 'v'], ...TRICKY_STRINGS.map((s, i): Cell[] => [`k${i}`, encodeCell(f('note'), s)]), ['knull', encodeCell(f('note'), null)]];
    const { text, back } = await roundTripText(records);
    assert.deepEqual(back, records);
    assert.match(text, /^k0,""$/m, 'the empty string is written as a quoted empty cell');
    assert.match(text, /^knull,$/m, 'null is written as an empty unquoted cell');
    assert.match(text, /^k\d+,=cmd\|' \/C calc'!A0$/m, 'formula-like text is not escaped');
    for (let i = 0; i < TRICKY_STRINGS.length; i++) assert.equal(decodeCell(f('note'), back[i + 1]![1]!), TRICKY_STRINGS[i]);
    assert.equal(decodeCell(f('note'), back.at(-1)![1]!), null);
  });

  test('an empty unquoted cell in a non-nullable field loads as "" for str and the default otherwise', () => {
    assert.equal(decodeCell(f('title'), null), '');
    assert.equal(decodeCell(f('count'), null), 0);
    assert.equal(decodeCell(f('flag'), null), false);
    assert.deepEqual(decodeCell(f('tags'), null), []);
    assert.equal(decodeCell(f('labels'), null), null, 'sets are nullable');
    assert.equal(decodeCell(f('owner'), null), null, 'refs are nullable');
  });

  test('floats round-trip exactly (shortest repr, -0 kept)', () => {
    const values = [0, -0, 0.1, 0.1 + 0.2, 1 / 3, -2.5, 1637000000.123456, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, -Number.MIN_VALUE, 2 ** 53 + 2];
    for (let i = 0; i < 2000; i++) values.push((Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 40 - 20));
    for (const v of values) {
      const cell = encodeCell(f('score'), v);
      assert.equal(cell, formatFloat(v));
      assert.ok(Object.is(decodeCell(f('score'), cell), v), `${v} -> ${cell}`);
    }
    assert.equal(encodeCell(f('score'), -0), '-0');
    const list = encodeCell(f('ratios'), [-0, 0.1, 1e21]);
    assert.equal(list, '[-0,0.1,1e+21]');
    const back = decodeCell(f('ratios'), list) as number[];
    assert.ok(Object.is(back[0], -0));
    assert.deepEqual(back, [-0, 0.1, 1e21]);
  });

  test('ints are decimal text; an integral float such as 3.0 is accepted (pandas NaN columns), 3.5 is not', () => {
    assert.equal(encodeCell(f('count'), 42), '42');
    assert.equal(encodeCell(f('count'), -9007199254740991), '-9007199254740991');
    assert.equal(decodeCell(f('count'), '42'), 42);
    assert.equal(decodeCell(f('count'), '3.0'), 3);
    assert.equal(decodeCell(f('count'), '1e3'), 1000);
    for (const bad of ['3.5', 'abc', '', ' 1', '0x10', '9007199254740993', 'nan', 'inf']) {
      assert.throws(() => decodeCell(f('count'), bad), (e) => isLexiconsError(e, 'CSV') && /expected an int/.test(e.message), bad);
    }
  });

  test('floats reject non-numbers and non-finite values; accept ints and pandas forms', () => {
    assert.equal(decodeCell(f('score'), '1637000000.123456'), 1637000000.123456);
    assert.equal(decodeCell(f('score'), '2'), 2);
    assert.equal(decodeCell(f('score'), '1e+16'), 1e16);
    for (const bad of ['', 'abc', 'inf', 'NaN', '1e999', '1,5']) {
      assert.throws(() => decodeCell(f('score'), bad), (e) => isLexiconsError(e, 'CSV'), bad);
    }
  });

  test('bools are written True/False; True/False/true/false/1/0 load', () => {
    assert.equal(encodeCell(f('flag'), true), 'True');
    assert.equal(encodeCell(f('flag'), false), 'False');
    for (const t of ['True', 'true', 'TRUE', '1', '1.0']) assert.equal(decodeCell(f('flag'), t), true, t);
    for (const t of ['False', 'false', 'FALSE', '0', '0.0']) assert.equal(decodeCell(f('flag'), t), false, t);
    for (const bad of ['yes', '2', '', 'tru']) assert.throws(() => decodeCell(f('flag'), bad), (e) => isLexiconsError(e, 'CSV') && /expected a bool/.test(e.message));
  });

  test('refs are the pk string', () => {
    assert.equal(encodeCell(f('owner'), 'b3f1c2a4-5d6e-4f70-8a9b-0c1d2e3f4a5b'), 'b3f1c2a4-5d6e-4f70-8a9b-0c1d2e3f4a5b');
    assert.equal(decodeCell(f('owner'), 'abc'), 'abc');
  });
});

describe('csv codec: lists and sets', () => {
  test('list/set cells are JSON arrays and round-trip through a real file for every element kind', async () => {
    const cases: Array<[string, unknown[]]> = [
      ['tags', TRICKY_STRINGS],
      ['tags', ['\uD800 lone surrogate', 'a']],
      ['tags', []],
      ['nums', [1, -2, 0, 9007199254740991]],
      ['ratios', [0.1, 1e-7, -0, 1637000000.123456]],
      ['flags', [true, false]],
      ['labels', ['x', 'y, z', '"q"']],
    ];
    const records: Cell[][] = cases.map(([name, v], i) => [`k${i}`, encodeCell(f(name), v)]);
    assert.equal(records[3]![1], '[1,-2,0,9007199254740991]');
    assert.equal(records[5]![1], '[true,false]');
    const { back } = await roundTripText(records);
    cases.forEach(([name, v], i) => {
      const got = decodeCell(f(name), back[i]![1]!) as unknown[];
      assert.equal(got.length, v.length);
      v.forEach((x, j) => assert.ok(Object.is(got[j], x), `${name}[${j}]`));
    });
  });

  test('sets are deduplicated in insertion order on load', () => {
    assert.deepEqual(decodeCell(f('labels'), '["b","a","b"]'), ['b', 'a']);
    assert.deepEqual(decodeCell(f('labels'), "{'b', 'a', 'b'}"), ['b', 'a']);
  });

  test('Python reprs written by pandas load: lists, sets, set(), escapes, numbers, bools', () => {
    assert.deepEqual(decodeCollection('list', 'str', "['a', 'b']"), ['a', 'b']);
    assert.deepEqual(decodeCollection('set', 'str', "{'a'}"), ['a']);
    assert.deepEqual(decodeCollection('set', 'str', 'set()'), []);
    assert.deepEqual(decodeCollection('list', 'str', '[]'), []);
    assert.deepEqual(decodeCollection('list', 'str', `["it's", 'say "hi"', 'back\\\\slash', 'new\\nline', '\\x07\\u00e9\\U0001F389', 'ünï ✓']`), [
      "it's", 'say "hi"', 'back\\slash', 'new\nline', '\x07é🎉', 'ünï ✓',
    ]);
    assert.deepEqual(decodeCollection('list', 'str', "['it\\'s']"), ["it's"]);
    assert.deepEqual(decodeCollection('list', 'int', '[1, -2, 3.0]'), [1, -2, 3]);
    assert.deepEqual(decodeCollection('list', 'float', '[0.5, 1e-05, 1e+16, 2]'), [0.5, 1e-5, 1e16, 2]);
    assert.deepEqual(decodeCollection('list', 'bool', '[True, False]'), [true, false]);
    assert.deepEqual(decodeCollection('set', 'int', '{1, 2, 1}'), [1, 2]);
    assert.deepEqual(decodeCollection('list', 'str', "('a',)"), ['a']);
    assert.deepEqual(decodeCollection('list', 'str', " [ 'a' , 'b' , ] "), ['a', 'b']);
  });

  test('the literal parser never evaluates code and rejects what is not a list/set of the element type', () => {
    const bad: Array<['str' | 'int' | 'float' | 'bool', string, string]> = [
      ['str', "__import__('os').system('echo pwned')", 'expected'],
      ['str', "[__import__('os')]", 'unexpected'],
      ['str', "{'a': 1}", 'expected , or }'],
      ['str', '{}', 'dict'],
      ['str', "['a'", 'expected , or ]'],
      ['str', "['unterminated]", 'unterminated string'],
      ['str', "['a'] + ['b']", 'trailing text'],
      ['str', '[None]', 'found element None'],
      ['int', '[1.5]', 'found element'],
      ['int', "['1']", 'found element'],
      ['float', '[inf]', 'unexpected'],
      ['float', '[nan]', 'unexpected'],
      ['bool', '[1]', 'found element'],
      ['str', 'a,b', 'expected'],
      ['str', '{"a": 1}', 'expected , or }'],
    ];
    for (const [el, text, msg] of bad) {
      assert.throws(() => decodeCollection('list', el, text), (e) => isLexiconsError(e, 'CSV') && e.message.includes(msg), `${text}: expected "${msg}"`);
    }
  });
});

describe('csv codec: headers and records', () => {
  test('the header is pk then the fields in declaration order; rows encode in that order', () => {
    const user = tableOf('User');
    assert.deepEqual(headerOf(user), ['pk', 'email', 'password']);
    assert.deepEqual(encodeRow(user, { pk: 'u1', password: 'p', email: 'e' }), ['u1', 'e', 'p']);
  });

  test('planHeader maps columns in any order, lists missing fields and extra columns', () => {
    const plan = planHeader('x.csv', tableOf('User'), ['password', 'pk', 'legacy_flag']);
    assert.equal(plan.pkIndex, 1);
    assert.deepEqual(plan.missing.map((m) => m.name), ['email']);
    assert.deepEqual(plan.extra, [{ name: 'legacy_flag', index: 2 }]);
    const row = decodeRecord(plan, ['pw', 'u1', 'old'], 2);
    assert.deepEqual(row, { pk: 'u1', password: 'pw', email: '' });
  });

  test('bad headers are CSV errors naming the file and column', () => {
    const user = tableOf('User');
    const cases: Array<[Cell[], RegExp]> = [
      [['email', 'password'], /x\.csv, line 1 \(header\): no pk column/],
      [['pk', 'email', 'email'], /x\.csv, line 1 \(header\), column email: duplicate column name/],
      [['pk', null, 'email'], /x\.csv, line 1 \(header\), column 2: empty column name/],
    ];
    for (const [header, re] of cases) assert.throws(() => planHeader('x.csv', user, header), (e) => isLexiconsError(e, 'CSV') && re.test(e.message));
  });

  test('a wrong cell names file, line and column; an empty pk is rejected', () => {
    const plan = planHeader('data/ChatMessage.csv', tableOf('ChatMessage'), ['pk', 'author', 'channel', 'content', 'timestamp']);
    assert.throws(
      () => decodeRecord(plan, ['m1', null, 'Public', 'hi', 'yesterday'], 7),
      (e) => isLexiconsError(e, 'CSV') && e.message === 'data/ChatMessage.csv, line 7, column timestamp: expected a float, got "yesterday"',
    );
    assert.throws(() => decodeRecord(plan, [null, null, 'Public', 'hi', '1'], 3), (e) => isLexiconsError(e, 'CSV') && /line 3, column pk: empty pk/.test(e.message));
  });
});

// pandas is not a project dependency: .ci/run installs Debian's python3-pandas so CI runs this check.
const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import pandas'], { stdio: 'ignore' }).status === 0);

test('files we write are readable by pandas read_csv (null as NaN, "" as empty string, lists as JSON)', { skip: python ? false : 'no Python with pandas here' }, async () => {
  await using folder = await tempDir('lexicons-csv-');
  const dir = folder.path;
  const file = join(dir, 'Item.csv');
  const rows = [
    { pk: 'i1', title: 'comma, "quoted"\nnewline', count: 3, score: 0.1, flag: true, tags: ["it's", 'ü'], nums: [1], labels: ['x'], ratios: [0.5], flags: [false], note: '', owner: null },
    { pk: 'i2', title: '=cmd|\' /C calc\'!A0', count: -1, score: 1637000000.123456, flag: false, tags: [], nums: [], labels: null, ratios: [], flags: [], note: null, owner: 'u1' },
  ];
  await writeFile(file, formatRecords([headerOf(item), ...rows.map((r) => encodeRow(item, r))]));
  const script = `
import json, sys, pandas as pd
df = pd.read_csv(sys.argv[1], keep_default_na=False, na_values=[''])
# keep_default_na=False: only empty cells are NaN; pandas reads quoted "" as NaN too unless told otherwise
raw = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False)
out = {c: [None if (isinstance(v, float) and v != v) else v for v in raw[c].tolist()] for c in raw.columns}
out['_tags'] = [json.loads(t) for t in raw['tags']]
out['_score'] = df['score'].tolist()
print(json.dumps(out))`;
  const res = spawnSync(python!, ['-c', script, file], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as Record<string, unknown[]>;
  assert.deepEqual(out.title, rows.map((r) => r.title));
  assert.deepEqual(out._tags, rows.map((r) => r.tags));
  assert.deepEqual(out._score, rows.map((r) => r.score));
  assert.deepEqual(out.flag, ['True', 'False']);
  assert.equal(await readFile(file, 'utf8').then((t) => t.split('\n')[0]), headerOf(item).join(','));
});
