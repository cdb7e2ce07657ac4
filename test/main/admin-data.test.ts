/**
 * The admin page's rooms without a browser: secret fields (schema option, masked rows, masked
 * log events), the chart sampler's rates and ring, and the bounds of
 * the rows view (page size, depth, sort keys) over a real store.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLexiconsError } from '../../src/errors.js';
import { AdminData, AdminRequestError, MAX_DEPTH, MAX_PAGE } from '../../src/main/admin-data.js';
import { AdminSampler } from '../../src/main/admin-sampler.js';
import { MASK, maskingLog, maskRow, secretFields } from '../../src/main/admin-secrets.js';
import { createHub } from '../../src/main/hub.js';
import { Metrics } from '../../src/main/metrics.js';
import { compileSchema, field, Model } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';

class Account extends Model {
  static email = field.str({ unique: true });
  static token = field.str({ secret: true, unique: true });
  static age = field.int({ nullable: true });
  static tags = field.list('str');
}

const schema = () => compileSchema([Account]);

describe('secret fields', () => {
  it('are declared with secret: true (a boolean) and masked in rows', () => {
    const s = schema();
    assert.deepEqual([...secretFields(s).get('Account')!], ['token']);
    assert.deepEqual(maskRow({ pk: 'a', email: 'x@y', token: 't0p', age: null }, secretFields(s).get('Account')), { pk: 'a', email: 'x@y', token: MASK, age: null });
    assert.deepEqual(maskRow({ token: null }, new Set(['token'])), { token: null }, 'null stays null');
    class Bad extends Model {
      static token = field.str({ secret: 'yes' as unknown as boolean });
    }
    assert.throws(() => compileSchema([Bad]), (e) => isLexiconsError(e, 'SCHEMA') && /Model Bad, field token: secret must be a boolean/.test(e.message));
  });

  it('are masked in log events: keys named like them at any depth, and the values storage errors quote', () => {
    const seen: Array<Record<string, unknown>> = [];
    const log = maskingLog((_status, data) => seen.push(data), schema());
    log('SIGNAL-ERROR', {
      message: 'Account.token: value "abc\\"def" already exists (unique field); Account.email: value "x@y" already exists (unique field)',
      args: { email: 'x@y', token: 'plain-secret', nested: [{ token: 'deeper' }] },
    });
    log('SIGNAL-ERROR', { message: 'Account.token: expected str, got number 12345' });
    assert.deepEqual(seen, [
      {
        message: `Account.token: value ${MASK} already exists (unique field); Account.email: value "x@y" already exists (unique field)`,
        args: { email: 'x@y', token: MASK, nested: [{ token: MASK }] },
      },
      { message: `Account.token: expected str, got number ${MASK}` },
    ]);
    const plain = (_s: string, _d: Record<string, unknown>) => undefined;
    assert.equal(maskingLog(plain, compileSchema([class Open extends Model { static x = field.int(); }])), plain, 'no secret field: the log is untouched');
  });
});

describe('AdminSampler', () => {
  it('turns the counters into per-second rates, mean commit times and memory, and keeps a ring', () => {
    const metrics = new Metrics();
    const sampler = new AdminSampler({ metrics, connections: () => 3, storeBytes: () => 2 * 1024 * 1024 }, { capacity: 3 });
    const t0 = Date.now();
    sampler.sample(t0 + 1000); // baseline second
    metrics.recordSignals(50, 0, t0 + 1500);
    metrics.fanout.observe(120);
    metrics.recordBatch(0.01, 50, 50, 2, 1);
    metrics.recordBatch(0.01, 1, 1, 4, 1);
    const s = sampler.sample(t0 + 3000); // two seconds later
    assert.deepEqual([s.callsPerSecond, s.deliveredPerSecond, s.commitMs, s.connections, s.storeMiB], [25, 60, 3, 3, 2]);
    assert.ok(s.rssMiB > 0 && s.heapMiB > 0);
    assert.equal(sampler.sample(t0 + 4000).commitMs, null, 'no commit in that second');
    sampler.sample(t0 + 5000);
    assert.deepEqual(sampler.since(0).map((x) => x.seq), [2, 3, 4], 'the ring keeps the last 3');
    assert.deepEqual(sampler.since(3).map((x) => x.seq), [4]);
  });
});

describe('AdminData rows', () => {
  it('pages and sorts through the top-k path, masks secrets, and refuses what is unbounded or secret', () => {
    const store = SharedStore.create(schema());
    store.bulkLoad(Account, Array.from({ length: 250 }, (_, i) => ({ email: `u${String(i).padStart(3, '0')}@x`, token: `secret-${i}`, age: i % 7, tags: ['a'] })));
    const data = new AdminData({ store, hub: createHub([], () => undefined) });
    const q = (params: Record<string, string>) => new URLSearchParams(params);
    const page = data.rows(q({ table: 'Account', sort: 'email', desc: '1', offset: '10', limit: '5' }));
    assert.deepEqual(page.rows.map((r) => r.email), ['u239@x', 'u238@x', 'u237@x', 'u236@x', 'u235@x']);
    assert.ok(page.rows.every((r) => r.token === MASK));
    assert.equal(page.total, 250);
    assert.equal(data.rows(q({ table: 'Account', limit: String(MAX_PAGE) })).rows.length, MAX_PAGE);
    const refused = (params: Record<string, string>, message: RegExp) => assert.throws(() => data.rows(q(params)), (e) => e instanceof AdminRequestError && message.test(e.message));
    refused({ table: 'Nope' }, /unknown table "Nope"/);
    refused({ table: 'Account', limit: String(MAX_PAGE + 1) }, /limit must be an integer from 1 to 200/);
    refused({ table: 'Account', offset: String(MAX_DEPTH - 10), limit: '50' }, /pages end 10000 rows deep/);
    refused({ table: 'Account', sort: 'token' }, /cannot sort Account by "token"/);
    refused({ table: 'Account', sort: 'tags' }, /cannot sort Account by "tags"/);
    const tables = data.tables();
    assert.deepEqual(tables.map((t) => [t.name, t.rows]), [['Account', 250]]);
    assert.deepEqual(tables[0]!.fields.map((f) => [f.name, f.secret, f.sortable]), [['pk', false, true], ['email', false, true], ['token', true, false], ['age', false, true], ['tags', false, false]]);
    assert.deepEqual(data.channels(), { total: 0, history: false, listed: [] });
    assert.deepEqual(data.connections(), { total: 0, listed: [] });
  });
});
