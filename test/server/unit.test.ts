/**
 * Unit tests of the pure parts: password hashing (incl. the original's PBKDF2 vectors), frame
 * parsing, header data decoding, addresses and trust, the rate limiter, CLI parsing, the uWS
 * loader's refusal of the JS fallback.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLexiconsError } from '../../src/errors.js';
import { parseCommand } from '../../src/main/cli.js';
import { RateLimiter } from '../../src/main/socket-connection.js';
import { isTrusted, normalizeAddress } from '../../src/main/upgrade.js';
import { loadUws } from '../../src/main/uws.js';
import { closeReason, decodeHeaderValue, errorFrame, itemText, parseFrame } from '../../src/protocol.js';
import { scanCallIds } from '../../src/call-ids.js';
import { encrypt, encryptIfPlain, legacyHash, needsRehash, utils, verify } from '../../src/utils.js';
import { utils as exported } from '../../src/index.js';

describe('utils.encrypt / verify', () => {
  it('hashes with salted scrypt and verifies timing-safely', () => {
    const a = encrypt('hunter2');
    const b = encrypt('hunter2');
    assert.match(a, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    assert.notEqual(a, b, 'salted: two hashes of one password differ');
    assert.equal(verify('hunter2', a), true);
    assert.equal(verify('hunter3', a), false);
    assert.equal(needsRehash(a), false);
    assert.equal(exported, utils);
  });

  it("verifies the original lexicons' PBKDF2-HMAC-SHA256 hashes (test vectors) and flags them for re-hashing", () => {
    const pw = '4d8194b2daa10eb8e3a4ff252f37e33760f001a57938271b641a27eae67b0f07';
    assert.equal(legacyHash('pw', ''), pw);
    assert.equal(legacyHash('password', 'salt'), '0394a2ede332c9a13eb82e9b24631604c31df978b4e2f0fbd2c549944f9d79a5');
    const saved = process.env.SALT;
    delete process.env.SALT;
    try {
      assert.equal(verify('pw', pw), true);
      assert.equal(verify('pW', pw), false);
      process.env.SALT = 'salt';
      assert.equal(verify('password', '0394a2ede332c9a13eb82e9b24631604c31df978b4e2f0fbd2c549944f9d79a5'), true);
    } finally {
      if (saved === undefined) delete process.env.SALT;
      else process.env.SALT = saved;
    }
    assert.equal(needsRehash(pw), true);
  });

  it('rejects malformed stored values and non-string passwords without throwing', () => {
    assert.equal(verify('pw', 'plain text'), false);
    assert.equal(verify('pw', 'scrypt$1$8$1$AAAA$BBBB'), false);
    assert.equal(verify(undefined, encrypt('x')), false);
    assert.throws(() => encrypt(5 as unknown as string), /password must be a string/);
  });

  it('encryptIfPlain never double-hashes, and never stores a hex-looking password in plain', () => {
    const h = encryptIfPlain('secret');
    assert.equal(encryptIfPlain(h), h);
    const hexPassword = legacyHash('pw', '');
    assert.notEqual(encryptIfPlain(hexPassword), hexPassword);
    assert.equal(verify(hexPassword, encryptIfPlain(hexPassword)), true);
  });
});

describe('protocol', () => {
  it('parses one call and lists of calls', () => {
    assert.deepEqual(parseFrame('{"A": {"x": 1}}', 10), [{ name: 'A', args: { x: 1 }, id: undefined }]);
    assert.deepEqual(parseFrame('[{"A": {}}, {"$id": 3, "B": null}]', 10), [
      { name: 'A', args: {}, id: undefined },
      { name: 'B', args: {}, id: 3 },
    ]);
  });

  it('reports frame-level errors and item-level errors in place', () => {
    assert.throws(() => parseFrame('{', 10), /^LexiconsError: Malformed JSON/);
    assert.throws(() => parseFrame('null', 10), /Frame must be a JSON object/);
    assert.throws(() => parseFrame('[{"A":{}},{"A":{}}]', 1), /Too many calls in one frame: 2 \(limit 1\)/);
    const [ok, bad] = parseFrame('[{"A": {}}, "x"]', 10);
    assert.equal((ok as { name: string }).name, 'A');
    assert.ok(isLexiconsError(bad, 'PROTOCOL'));
    assert.equal((bad as Error).message, 'Call 2 must be an object {"SignalName": {...}}');
  });

  it('decodes header data as the original (JSON, single quotes, raw)', () => {
    assert.deepEqual(decodeHeaderValue('{"email": "a"}'), { email: 'a' });
    assert.deepEqual(decodeHeaderValue("{'email': 'a'}"), { email: 'a' });
    assert.deepEqual(decodeHeaderValue('opaque-token'), { header: 'opaque-token' });
    assert.deepEqual(decodeHeaderValue('42'), { header: 42 });
  });

  it('builds response, error and close texts', () => {
    assert.equal(itemText('A', { x: 1 }), '{"A":{"x":1}}');
    assert.equal(itemText('A', undefined), '{"A":null}');
    assert.equal(errorFrame(['bad']), '[{"Errors":["bad"]}]');
    assert.equal(errorFrame(['bad'], 'EXECUTION', 'q'), '[{"Errors":["bad"],"code":"EXECUTION","$id":"q"}]');
    assert.equal(Buffer.byteLength(closeReason('é'.repeat(100))), 122);
  });
});

describe('addresses and trust', () => {
  it('normalizes uWS address texts', () => {
    assert.equal(normalizeAddress('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
    assert.equal(normalizeAddress('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeAddress('0000:0000:0000:0000:0000:0000:0000:0001'), '::1');
    assert.equal(normalizeAddress('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  });

  it('trusts *, empty lists, exact addresses and localhost', () => {
    assert.equal(isTrusted('1.2.3.4', ['*']), true);
    assert.equal(isTrusted('1.2.3.4', []), true);
    assert.equal(isTrusted('1.2.3.4', ['1.2.3.4']), true);
    assert.equal(isTrusted('1.2.3.5', ['1.2.3.4']), false);
    assert.equal(isTrusted('::1', ['localhost']), true);
  });
});

describe('rate limiter', () => {
  it('allows a burst of `rate`, refuses the excess, flags sustained abuse', () => {
    const limiter = new RateLimiter(10, 0);
    const verdicts = Array.from({ length: 25 }, () => limiter.take(0));
    assert.equal(verdicts.filter((v) => v === 'ok').length, 10);
    assert.equal(verdicts.filter((v) => v === 'limited').length, 10);
    assert.equal(verdicts.at(-1), 'abuse');
    assert.equal(new RateLimiter(10, 0).take(0), 'ok');
    const refilled = new RateLimiter(10, 0);
    for (let i = 0; i < 10; i++) refilled.take(0);
    assert.equal(refilled.take(100), 'ok', 'one token refills in 100 ms at 10/s');
  });
});

describe('scanCallIds', () => {
  it('reads the $id of each call, not one nested in arguments or inside a string', () => {
    assert.deepEqual(scanCallIds('[{"A": {"$id": 1, "x": [{"$id": 2}]}, "$id": "a"}, {"$id" : -3.5e1, "B": {}}, {"C": "say \\"$id\\": 4"}]'), ['a', -35]);
    assert.deepEqual(scanCallIds('{"A": {}, "$id": 9}'), [9]);
    assert.deepEqual(scanCallIds('{"A": {}, "$id": "x\\"y"}'), ['x"y']);
  });

  it('recovers what a malformed frame still tells, and ignores ids parseCall refuses', () => {
    assert.deepEqual(scanCallIds('[{"A": {}, "$id": 1}, {"B": {}, "$id": 2'), [1, 2]);
    assert.deepEqual(scanCallIds('[{"A": {}, "$id": 1e400}, {"$id": null}, {"$id": [1]}, {"$id": true}]'), []);
    assert.deepEqual(scanCallIds('"$id": 1'), []);
    assert.deepEqual(scanCallIds('{"A": 1}'), []);
  });
});

describe('CLI parsing', () => {
  it('parses start with options and defaults the app to ./main', () => {
    assert.deepEqual(parseCommand(['start', '--workers', '4', '-p', '0', '--trust', '127.0.0.1, ::1']), {
      command: 'start',
      app: './main',
      overrides: { workers: 4, port: 0, trust: ['127.0.0.1', '::1'] },
    });
    assert.equal(parseCommand(['-h']), 'help');
    assert.throws(() => parseCommand(['start', 'a', 'b']), /unexpected argument "b"/);
    assert.throws(() => parseCommand(['start', '--trust', ',']), /--trust must list at least one address/);
    assert.deepEqual(parseCommand(['check', 'app.js', '--data', 'd']), { command: 'check', app: 'app.js', overrides: { data: 'd' } });
    assert.throws(() => parseCommand(['compact', '--workers', '2']), /--workers does not apply to compact/);
  });
});

describe('uWS loader', () => {
  it('refuses the slow JS fallback', () => {
    assert.throws(() => loadUws({ UWS_USE_FALLBACK: 'true' }), (err: unknown) => isLexiconsError(err, 'RUNTIME') && /native binary/.test((err as Error).message));
  });
  it('loads the native binary', () => {
    assert.equal(typeof loadUws({}).App, 'function');
  });
});
