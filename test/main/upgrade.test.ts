/**
 * The upgrade policy (src/main/upgrade.ts) without a socket: decideUpgrade's checks in their
 * order, the Origin policy, header data from HTTP headers and query parameters, and the
 * per-address login attempt budget.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpRequest } from 'uWebSockets.js';
import { AttemptLimiter, collectHeaderData, decideUpgrade, isOriginAllowed, type UpgradePolicy, type UpgradeRequest } from '../../src/main/upgrade.js';

function policy(overrides: Partial<UpgradePolicy> = {}): UpgradePolicy {
  return {
    trust: ['*'],
    origins: ['*'],
    maxHeaderDataBytes: 64,
    authAttemptsPerMinute: 2,
    attempts: new AttemptLimiter(2),
    headerNames: ['Login'],
    anonymous: 'reject',
    onConnect: false,
    ...overrides,
  };
}

function request(headerData: Record<string, string> = {}, address = '10.0.0.1', origin = ''): UpgradeRequest & { reads: number } {
  const r = {
    address,
    origin,
    reads: 0,
    headerData: () => {
      r.reads++;
      return headerData;
    },
  };
  return r;
}

/** An HttpRequest stand-in: lower-case header names, a query string. */
function httpRequest(headers: Record<string, string>, query: string): HttpRequest {
  return { getHeader: (name: string) => headers[name] ?? '', getQuery: () => query } as unknown as HttpRequest;
}

describe('decideUpgrade', () => {
  it('refuses while shutting down, before reading anything else', () => {
    const r = request({ Login: '{}' });
    assert.deepEqual(decideUpgrade(r, policy(), false), { kind: 'refuse', status: '503 Service Unavailable', body: 'server is shutting down' });
    assert.equal(r.reads, 0);
  });

  it('refuses untrusted addresses, then disallowed origins, with their log lines, before reading header data', () => {
    const untrusted = request({ Login: '{}' }, '10.0.0.9');
    assert.deepEqual(decideUpgrade(untrusted, policy({ trust: ['10.0.0.1'], origins: ['https://a.example'] }), true), {
      kind: 'refuse',
      status: '403 Forbidden',
      body: 'untrusted source',
      log: { status: 'UNTRUSTED-SOURCE-DENIED', data: { address: '10.0.0.9' } },
    });
    const foreign = request({ Login: '{}' }, '10.0.0.1', 'https://b.example');
    assert.deepEqual(decideUpgrade(foreign, policy({ trust: ['10.0.0.1'], origins: ['https://a.example'] }), true), {
      kind: 'refuse',
      status: '403 Forbidden',
      body: 'origin not allowed',
      log: { status: 'ORIGIN-DENIED', data: { address: '10.0.0.1', origin: 'https://b.example' } },
    });
    assert.equal(untrusted.reads + foreign.reads, 0);
  });

  it('refuses header data over the limit (431) without spending a login attempt', () => {
    const p = policy();
    const decision = decideUpgrade(request({ Login: 'x'.repeat(65) }), p, true);
    assert.equal(decision.kind === 'refuse' && decision.status, '431 Request Header Fields Too Large');
    assert.equal(p.attempts.size, 0);
  });

  it('spends a login attempt per upgrade with header data; over the budget it is 429 with retry-after', () => {
    const p = policy();
    assert.deepEqual(decideUpgrade(request({ Login: '{}' }), p, true), { kind: 'viaPool', headerData: { Login: '{}' } });
    assert.equal(decideUpgrade(request({ Login: '{}' }), p, true).kind, 'viaPool');
    const third = decideUpgrade(request({ Login: '{}' }), p, true);
    assert.deepEqual(third, {
      kind: 'refuse',
      status: '429 Too Many Requests',
      body: 'too many login attempts',
      retryAfterSeconds: 30,
      log: { status: 'LIMIT', data: { address: '10.0.0.1', message: 'login attempts over 2 per minute: HTTP 429' } },
    });
    assert.equal(decideUpgrade(request({ Login: '{}' }, '10.0.0.2'), p, true).kind, 'viaPool', 'the budget is per address');
  });

  it('rejects (upgrade, then Errors + 1008) a connection without credentials when anonymous ones are refused', () => {
    assert.deepEqual(decideUpgrade(request(), policy(), true), {
      kind: 'reject',
      reason: 'no credentials (send one of the headers Login as an HTTP header or query parameter)',
    });
    assert.deepEqual(decideUpgrade(request(), policy({ anonymous: 'allow' }), true), { kind: 'admit' });
  });

  it('sends a connection through the pool when the app has an onConnect hook, else admits it', () => {
    assert.deepEqual(decideUpgrade(request(), policy({ headerNames: [], onConnect: true }), true), { kind: 'viaPool', headerData: {} });
    assert.deepEqual(decideUpgrade(request(), policy({ headerNames: [] }), true), { kind: 'admit' });
  });
});

describe('upgrade policy helpers', () => {
  it('isOriginAllowed: no Origin (not a browser) and * always pass; names compare case-insensitively', () => {
    assert.equal(isOriginAllowed('', ['https://a.example']), true);
    assert.equal(isOriginAllowed('https://x.example', ['*']), true);
    assert.equal(isOriginAllowed('HTTPS://A.example', ['https://a.example']), true);
    assert.equal(isOriginAllowed('https://b.example', ['https://a.example']), false);
  });

  it('collectHeaderData: HTTP headers win over query parameters; names are case-insensitive; empty values are absent', () => {
    const req = httpRequest({ login: '{"email":"h"}' }, 'LOGIN=%7B%22email%22%3A%22q%22%7D&token=abc&Empty=');
    assert.deepEqual(collectHeaderData(req, ['Login', 'Token', 'Empty', 'Missing']), { Login: '{"email":"h"}', Token: 'abc' });
    assert.deepEqual(collectHeaderData(req, []), {});
  });

  it('AttemptLimiter refills over a minute and forgets full buckets when it sweeps', () => {
    const limiter = new AttemptLimiter(60, 2);
    const t0 = 1_000_000;
    for (let i = 0; i < 60; i++) assert.equal(limiter.take('a', t0), true);
    assert.equal(limiter.take('a', t0), false);
    assert.equal(limiter.take('a', t0 + 1000), true, 'one token back after a second at 60 per minute');
    assert.equal(limiter.take('b', t0 + 1000), true);
    // A third address triggers a sweep: 'b' refilled to full after a minute and is forgotten.
    assert.equal(limiter.take('c', t0 + 120_000), true);
    assert.equal(limiter.size, 1);
  });
});
