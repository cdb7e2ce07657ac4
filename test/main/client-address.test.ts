/**
 * The client address behind trusted proxies (src/main/client-address.ts forwardedClient) and the
 * address lists (src/ops-options.ts AddressList: addresses, CIDR ranges, localhost, *).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forwardedClient } from '../../src/main/client-address.js';
import { AddressList } from '../../src/ops-options.js';

describe('AddressList', () => {
  it('matches addresses, CIDR ranges (IPv4 and IPv6), localhost and *', () => {
    const list = new AddressList(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', 'localhost']);
    assert.equal(list.has('10.200.3.4'), true);
    assert.equal(list.has('11.0.0.1'), false);
    assert.equal(list.has('192.168.1.7'), true);
    assert.equal(list.has('192.168.1.8'), false);
    assert.equal(list.has('fd12::1'), true);
    assert.equal(list.has('fe80::1'), false);
    assert.equal(list.has('127.0.0.9'), true);
    assert.equal(list.has('::1'), true);
    assert.equal(list.has('not-an-address'), false);
    assert.equal(new AddressList(['*']).has('203.0.113.1'), true);
  });
});

describe('forwardedClient', () => {
  const proxies = new AddressList(['10.0.0.0/8', '::1']);

  it('is the peer itself unless the peer is a trusted proxy', () => {
    assert.equal(forwardedClient('203.0.113.5', '198.51.100.1', proxies), '203.0.113.5');
    assert.equal(forwardedClient('10.0.0.2', '', proxies), '10.0.0.2');
  });

  it('is the rightmost X-Forwarded-For address that is not a trusted proxy', () => {
    assert.equal(forwardedClient('10.0.0.2', '198.51.100.1', proxies), '198.51.100.1');
    assert.equal(forwardedClient('10.0.0.2', '6.6.6.6, 198.51.100.1, 10.0.0.9', proxies), '198.51.100.1', 'left of the client is what the client wrote');
    assert.equal(forwardedClient('10.0.0.2', '10.0.0.8, 10.0.0.9', proxies), '10.0.0.8', 'all trusted: the leftmost');
  });

  it('normalizes entries: spaces, IPv4 with a port, bracketed IPv6, IPv4-mapped IPv6', () => {
    assert.equal(forwardedClient('10.0.0.2', ' 198.51.100.1:4321 ', proxies), '198.51.100.1');
    assert.equal(forwardedClient('::1', '[2001:DB8::1]:443', proxies), '2001:db8::1');
    assert.equal(forwardedClient('10.0.0.2', '::ffff:198.51.100.3', proxies), '198.51.100.3');
  });

  it('stops at a malformed entry: the client is then the last trusted hop', () => {
    assert.equal(forwardedClient('10.0.0.2', '198.51.100.1, unknown', proxies), '10.0.0.2');
    assert.equal(forwardedClient('10.0.0.2', 'garbage, 10.0.0.7', proxies), '10.0.0.7');
  });
});
