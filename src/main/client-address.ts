/**
 * @module main/client-address
 * The client address of an HTTP request or upgrade: the socket peer, or, when the peer is a
 * trusted reverse proxy (`trustProxy`), the address the proxies forwarded in `X-Forwarded-For`.
 * Every per-address decision (the `trust` list, `limits.authAttemptsPerMinute`, the admin
 * routes), `ws.address` and the logs use it.
 *
 * Each proxy appends the address it received the request from, so the header reads
 * `client, proxy1, proxy2` and only its right end can be believed: walking from the right, every
 * trusted proxy is skipped and the first address that is not one is the client. Anything left of
 * it was written by the client and is ignored. A malformed entry stops the walk: the client is
 * then the last trusted hop (a client cannot pick its address by sending garbage).
 */
import { isIP } from 'node:net';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AddressList } from '../ops-options.js';
import { normalizeAddress, remoteAddress } from './upgrade.js';

/** One `X-Forwarded-For` entry as an address: brackets and a port removed, normalized; '' if malformed. */
function forwardedEntry(entry: string): string {
  let e = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracketed) e = bracketed[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(e)) e = e.slice(0, e.lastIndexOf(':'));
  return isIP(e) === 0 ? '' : normalizeAddress(e);
}

/**
 * The client behind `peer`: `peer` itself unless it is a trusted proxy; then the rightmost
 * `X-Forwarded-For` address that is not a trusted proxy (the leftmost one when all are).
 */
export function forwardedClient(peer: string, forwardedFor: string, proxies: AddressList): string {
  if (forwardedFor === '' || !proxies.has(peer)) return peer;
  const hops = forwardedFor.split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const address = forwardedEntry(hops[i]!);
    if (address === '') return client;
    client = address;
    if (!proxies.has(address)) return address;
  }
  return client;
}

/** The client address of a uWS request (call during the handler: `req` is stack-allocated). */
export function requestAddress(res: HttpResponse, req: HttpRequest, proxies: AddressList | null): string {
  const peer = remoteAddress(res);
  if (proxies === null) return peer;
  return forwardedClient(peer, req.getHeader('x-forwarded-for'), proxies);
}
