/**
 * `db.queryJson`: the JSON text written from the columns is, character for character, the text of
 * `JSON.stringify(records.map(toDict))` — every field type (str, int, float, bool, list, set,
 * ref, dictionary str), nulls, empty strings, unicode, escapes, floats like 1e21 / -0 / 5e-324 —
 * on every plan (pk, unique, index, scan, top-k, the `_where` / `_sort` fallbacks), with the
 * transaction's own writes; and json-text.ts splices it into payloads (nested, several, forged).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Db, Filters } from '../../src/storage/api.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { RawJson, jsonText } from '../../src/json-text.js';
import { JsonRows } from '../../src/storage/json-rows.js';
import { JsonOut } from '../../src/storage/json-bytes.js';
import { ChatMessage, User } from './fixtures/schema.js';

class Sample extends Model {
  static owner = field.ref(() => User);
  static label = field.str({ index: true });
  static kind = field.str({ dictionary: true });
  static f = field.float({ nullable: true });
  static n = field.int({ nullable: true });
  static ok = field.bool({ nullable: true });
  static floats = field.list('float');
  static ints = field.set('int');
  static flags = field.list('bool', { nullable: true });
  static words = field.set('str');
}

const STRINGS = ['', 'plain', 'quote " backslash \\ slash /', 'tab\tnew\nline\r\u0000\u001f\u007f', 'ünïcödé ✓ 漢字 😀', '\ud800 lone', '\u2028\u2029', '{"pk":"x"}'];
const FLOATS = [0, -0, 1e21, 1e-7, -1.5, 5e-324, 0.1 + 0.2, 1.7976931348623157e308, 123456789012.125, 1733150000.123456, -(2 ** 52) + 0.5, 4.35, 2 ** 53];

function fresh(): SharedStore {
  const store = SharedStore.create(compileSchema([User, ChatMessage, Sample]), { initialRows: 4, maxBytesPerBuffer: 64 << 20 });
  store.runSync((db) => {
    db.create(User, { pk: 'u1', email: 'a@x', score: 1, admin: false, tags: [], roles: [], password: 'p' });
    STRINGS.forEach((s, i) => {
      db.create(Sample, {
        pk: `s${i}${s}`,
        owner: i % 3 === 0 ? null : 'u1',
        label: s,
        kind: i % 2 === 0 ? s : 'k',
        f: i === 3 ? null : FLOATS[i % FLOATS.length]!,
        n: i === 4 ? null : (i - 3) * 2 ** 40,
        ok: i === 5 ? null : i % 2 === 0,
        floats: FLOATS.slice(0, i),
        ints: [i, -i, 0],
        flags: i === 6 ? null : [true, false].slice(0, i % 3),
        words: STRINGS.slice(0, i % 4),
      });
    });
  });
  return store;
}

/** The slow path's text: records, toDict, JSON.stringify. */
const slow = (db: Db, filters?: Filters): string => JSON.stringify(db.query(Sample, filters).map((r) => r.toDict()));
const fast = (db: Db, filters?: Filters): string => jsonText(db.queryJson(Sample, filters))!;

const PLANS: Array<[string, Filters | undefined]> = [
  ['a scan of every row', undefined],
  ['pk equality', { pk: `s4${STRINGS[4]}` }],
  ['pk in', { pk__in: [`s1${STRINGS[1]}`, `s0`, 'missing'] }],
  ['indexed equality', { label: STRINGS[2] }],
  ['indexed in', { label__in: STRINGS.slice(3) }],
  ['a scan with a predicate', { n__gt: 0 }],
  ['a scan with a limit', { _limit: 3 }],
  ['top-k', { _sort: '-f', _limit: 4 }],
  ['top-k on two keys', { _sort: ['ok', '-n'], _limit: 5 }],
  ['_sort without _limit (rows built)', { _sort: 'label' }],
  ['_where (rows built)', { _where: (row) => (row.label as string).length > 3 }],
  ['max (rows built)', { n__max: true }],
  ['through a reference', { owner__email: 'a@x' }],
  ['nothing', { label: 'none such' }],
];

describe('db.queryJson', () => {
  for (const [name, filters] of PLANS) {
    it(`gives the same JSON text as records' toDict: ${name}`, () => {
      const store = fresh();
      store.runSync((db) => assert.equal(fast(db, filters), slow(db, filters)));
    });
  }

  it('includes the transaction\'s own writes, updates and deletes (same text as query)', () => {
    const store = fresh();
    store.runSync((db) => {
      db.create(Sample, { pk: 'mine', label: 'plain', kind: 'k', f: -0, n: 7, ok: true, floats: [1e21], ints: [1], flags: [true], words: ['a'] });
      db.update(Sample, `s1${STRINGS[1]}`, { label: 'changed ✓', f: 2.5 });
      db.drop(Sample, `s2${STRINGS[2]}`);
      for (const [, filters] of PLANS) assert.equal(fast(db, filters), slow(db, filters));
      assert.equal(db.queryJson(Sample, { pk: 'mine' }).length, 1);
    });
  });

  it('JsonRows reverse, slice and toArray work as on the array of records', () => {
    const store = fresh();
    store.runSync((db) => {
      const rows = db.queryJson(Sample, { _sort: '-n', _limit: 5 });
      const records = db.query(Sample, { _sort: '-n', _limit: 5 }).map((r) => r.toDict());
      assert.equal(rows.length, 5);
      assert.deepEqual(rows.toArray(), JSON.parse(JSON.stringify(records)));
      assert.equal(jsonText(rows.slice(1, 3)), JSON.stringify(records.slice(1, 3)));
      assert.equal(jsonText(rows.reverse()), JSON.stringify([...records].reverse()));
      // Plain JSON.stringify (user code) gives the same text through toJSON.
      assert.equal(JSON.stringify({ rows }), JSON.stringify({ rows: [...records].reverse() }));
    });
  });
});

describe('JsonRows from the columns (bytes)', () => {
  it('slice takes Array.prototype.slice arguments (negative, out of range, reversed), and items gives each row', () => {
    const store = fresh();
    store.runSync((db) => {
      const records = db.query(Sample, { _sort: 'n', _limit: 6 }).map((r) => JSON.stringify(r.toDict()));
      const rows = db.queryJson(Sample, { _sort: 'n', _limit: 6 });
      assert.deepEqual(rows.items, records);
      for (const [a, b] of [[undefined, undefined], [-2, undefined], [1, -1], [4, 2], [-100, 100], [2.7, 4.2], [NaN, 3]] as Array<[number | undefined, number | undefined]>) {
        assert.equal(jsonText(rows.slice(a, b)), `[${records.slice(a, b).join(',')}]`, `slice(${a}, ${b})`);
      }
      assert.equal(jsonText(rows.reverse().slice(0, 2)), `[${[...records].reverse().slice(0, 2).join(',')}]`);
      assert.equal(jsonText(db.queryJson(Sample, { label: 'none such' }).reverse()), '[]');
    });
  });

  it('rows larger than the write buffer, long and escaped strings, and rows kept across later queries', () => {
    const store = SharedStore.create(compileSchema([User, ChatMessage, Sample]), { initialRows: 4, maxBytesPerBuffer: 64 << 20 });
    const long = 'x'.repeat(100_000);
    store.runSync((db) => {
      db.create(User, { pk: 'u1', email: 'a@x', score: 1, admin: false, tags: [], roles: [], password: 'p' });
      for (let i = 0; i < 30; i++) {
        const label = i % 3 === 0 ? `${long}${i}` : i % 3 === 1 ? `${'ü'.repeat(70)} "q" ${i}` : `plain ${i}`;
        db.create(Sample, { pk: `p${i}`, owner: 'u1', label, kind: 'k', f: i + 0.25, n: i, ok: true, floats: [], ints: [], flags: [], words: [] });
      }
    });
    store.runSync((db) => {
      const kept = db.queryJson(Sample);
      const before = jsonText(kept);
      db.queryJson(Sample, { _sort: '-n', _limit: 7 }); // reuses this thread's write buffer
      assert.equal(jsonText(kept), before);
      assert.equal(before, slow(db));
      assert.ok(before!.length > 1_000_000);
    });
  });
});

describe('JsonOut.number', () => {
  it('writes what String(x) gives, for timestamps, decimals, integers, powers of two and random bit patterns', () => {
    const out = new JsonOut();
    const bits = new Float64Array(1);
    const words = new Uint32Array(bits.buffer);
    const values: number[] = [0, -0, 1, -1, 0.5, 1e21, 1e-7, 5e-324, 2 ** 53, 2 ** 53 - 1, 2 ** 52 + 0.5, 2 ** 51 + 0.25, 1.7976931348623157e308];
    for (let i = 0; i < 200_000; i++) {
      values.push(1.7e9 + Math.random() * 1e8, Math.round((1.7e9 + Math.random() * 1e8) * 1e6) / 1e6, Math.round(Math.random() * 1e9) / 10 ** (i % 12));
      values.push((Math.random() - 0.5) * 10 ** ((i % 40) - 10), i, -i / 100, 0.1 * i, 2 ** (i % 60), 2 ** (i % 60) - 1, 2 ** (i % 53) * (1 - 2 ** -52));
      words[0] = (Math.random() * 2 ** 32) >>> 0;
      words[1] = (Math.random() * 2 ** 32) >>> 0;
      if (Number.isFinite(bits[0])) values.push(bits[0]!);
    }
    let wrong = 0;
    for (const x of values) {
      out.pos = 0;
      out.number(x);
      const text = out.buf.toString('latin1', 0, out.pos);
      if (text !== String(x) && wrong++ < 5) assert.fail(`number(${String(x)}) wrote ${text}`);
    }
  });
});

class Text extends RawJson {
  readonly #text: string;
  constructor(text: string) {
    super();
    this.#text = text;
  }
  jsonText(): string {
    return this.#text;
  }
}

describe('jsonText', () => {
  it('splices every RawJson at its place, in nested objects and arrays', () => {
    const value = [{ A: { list: new Text('[1,2]'), s: 'x' } }, new Text('{"k":"v"}'), [new Text('null'), 3], new JsonRows(['{"pk":"a"}'])];
    assert.equal(jsonText(value), '[{"A":{"list":[1,2],"s":"x"}},{"k":"v"},[null,3],[{"pk":"a"}]]');
    assert.equal(jsonText(new Text('"top"')), '"top"');
  });

  it('is JSON.stringify for values without RawJson, and leaves look-alike strings alone', () => {
    const value = { a: '\u0000lexicons-raw-0', b: [undefined, () => 1, NaN, -0, 1e21], c: undefined, d: new Date(0) };
    assert.equal(jsonText(value), JSON.stringify(value));
    assert.equal(jsonText(undefined), undefined);
  });

  it('a RawJson inside a toJSON that calls jsonText is parsed, not left as a placeholder', () => {
    const inner = { toJSON: () => jsonText({ t: new Text('[7]') }) };
    assert.equal(jsonText({ inner, outer: new Text('[8]') }), JSON.stringify({ inner: '{"t":[7]}', outer: [8] }));
  });
});
