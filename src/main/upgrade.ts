/**
 * @module main/upgrade
 * What the main thread decides about an upgrade request before any worker is involved: the
 * client address (normalized), the trust list, the Origin policy, and the header data for the
 * app's Headers. Header data arrives as HTTP headers `Name: JSON` (the original) or as URL query
 * parameters `?Name=<url-encoded JSON>` (browsers cannot set WebSocket headers); names match
 * case-insensitively; an HTTP header wins over a query parameter of the same name.
 *
 * {@link decideUpgrade} puts the checks in their order; main/app.ts carries out its decision.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { LogStatus } from '../server.js';

/** `0000:…:ffff:7f00:0001` and `::ffff:127.0.0.1` → `127.0.0.1`; IPv6 compressed lower-case. */
export function normalizeAddress(text: string): string {
  const t = text.toLowerCase();
  if (!t.includes(':')) return t;
  const mapped = /^(?:0{1,4}:){5}ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(t);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  if (t.startsWith('::ffff:') && t.slice(7).includes('.')) return t.slice(7);
  const groups = expandIPv6(t);
  if (!groups) return t;
  return compressIPv6(groups);
}

function expandIPv6(t: string): number[] | undefined {
  const [head, tail, extra] = t.split('::');
  if (extra !== undefined) return undefined;
  const h = head ? head.split(':') : [];
  const tl = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const fill = tail !== undefined ? 8 - h.length - tl.length : 0;
  const parts = [...h, ...Array<string>(Math.max(0, fill)).fill('0'), ...tl];
  if (parts.length !== 8 || parts.some((p) => !/^[0-9a-f]{1,4}$/.test(p))) return undefined;
  return parts.map((p) => parseInt(p, 16));
}

function compressIPv6(groups: number[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function remoteAddress(res: HttpResponse): string {
  return normalizeAddress(Buffer.from(res.getRemoteAddressAsText()).toString());
}

/** `localhost` in a trust list stands for both loopback addresses. */
export function isTrusted(address: string, trust: readonly string[]): boolean {
  if (trust.length === 0 || trust.includes('*')) return true;
  for (const entry of trust) {
    const e = entry.trim().toLowerCase();
    if (e === 'localhost' && (address === '127.0.0.1' || address === '::1')) return true;
    if (normalizeAddress(e) === address) return true;
  }
  return false;
}

export function isOriginAllowed(origin: string, origins: readonly string[]): boolean {
  if (origin === '' || origins.includes('*')) return true;
  return origins.some((o) => o.toLowerCase() === origin.toLowerCase());
}

/** Header data for the declared Header names present in the request, keyed by canonical name. */
export function collectHeaderData(req: HttpRequest, names: readonly string[]): Record<string, string> {
  const data: Record<string, string> = {};
  if (names.length === 0) return data;
  let query: Map<string, string> | undefined;
  for (const name of names) {
    const fromHeader = req.getHeader(name.toLowerCase());
    if (fromHeader !== '') {
      data[name] = fromHeader;
      continue;
    }
    if (query === undefined) {
      query = new Map();
      for (const [key, value] of new URLSearchParams(req.getQuery() ?? '')) {
        const k = key.toLowerCase();
        if (!query.has(k)) query.set(k, value);
      }
    }
    const fromQuery = query.get(name.toLowerCase());
    if (fromQuery !== undefined && fromQuery !== '') data[name] = fromQuery;
  }
  return data;
}

/**
 * Login attempts per client address (`limits.authAttemptsPerMinute`): a token bucket per
 * address, refilled continuously, bursts up to one minute's worth. Addresses whose bucket is full
 * again carry no information and are swept once the map grows, so memory stays bounded by the
 * addresses active within about a minute (and never above `sweepAt` entries).
 */
export class AttemptLimiter {
  readonly #perMinute: number;
  readonly #buckets = new Map<string, { tokens: number; last: number }>();
  /** Sweep when the map holds this many addresses. */
  readonly #sweepAt: number;

  constructor(perMinute: number, sweepAt = 65_536) {
    this.#perMinute = perMinute;
    this.#sweepAt = sweepAt;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** True when `address` may make one more attempt now (and counts it). */
  take(address: string, now = Date.now()): boolean {
    let bucket = this.#buckets.get(address);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#sweepAt) this.#sweep(now);
      bucket = { tokens: this.#perMinute, last: now };
      this.#buckets.set(address, bucket);
    } else {
      bucket.tokens = Math.min(this.#perMinute, bucket.tokens + ((now - bucket.last) * this.#perMinute) / 60_000);
      bucket.last = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #sweep(now: number): void {
    for (const [address, b] of this.#buckets) {
      if (b.tokens + ((now - b.last) * this.#perMinute) / 60_000 >= this.#perMinute) this.#buckets.delete(address);
    }
    // Still crowded (a flood from very many addresses): forget the oldest entries. They start
    // again with a full bucket, which is lenient but keeps the map bounded.
    // Sweeping down to 3/4 makes the next sweep at least sweepAt/4 insertions away (amortized O(1)).
    const keep = Math.floor((this.#sweepAt * 3) / 4);
    for (const address of this.#buckets.keys()) {
      if (this.#buckets.size <= keep) break;
      this.#buckets.delete(address);
    }
  }
}

/** The server's upgrade policy (resolved options and the app's Headers). */
export interface UpgradePolicy {
  readonly trust: readonly string[];
  readonly origins: readonly string[];
  /** Longest header data accepted (`limits.maxMessageBytes`). */
  readonly maxHeaderDataBytes: number;
  readonly authAttemptsPerMinute: number;
  /** Login attempts per address (header data present). */
  readonly attempts: AttemptLimiter;
  /** Declared Header names. */
  readonly headerNames: readonly string[];
  readonly anonymous: 'reject' | 'allow';
  /** The app has an onConnect hook (it runs in the pool before the upgrade completes). */
  readonly onConnect: boolean;
}

/** What the upgrade handler reads of a request (header data only when the earlier checks passed). */
export interface UpgradeRequest {
  readonly address: string;
  readonly origin: string;
  /** The client offered the lexicons.v1 subprotocol: admission waits for its `$connect` frame. */
  readonly v1?: boolean;
  headerData(): Record<string, string>;
}

export type UpgradeDecision =
  /** Answer with an HTTP status; no upgrade. */
  | { kind: 'refuse'; status: string; body: string; retryAfterSeconds?: number; log?: { status: LogStatus; data: Record<string, unknown> } }
  /** Upgrade, then refuse with an Errors frame and close 1008 (browsers cannot read a failed upgrade's status). */
  | { kind: 'reject'; reason: string }
  /** Run the Headers (and onConnect) in the pool first; the upgrade completes as an effect. */
  | { kind: 'viaPool'; headerData: Record<string, string> }
  /** Upgrade now; the connection is admitted at `open`. */
  | { kind: 'admit' }
  /** A lexicons.v1 client: upgrade now; its `$connect` frame decides admission (main/v1-admission.ts). */
  | { kind: 'v1'; headerData: Record<string, string> };

/**
 * Admission by header data, after the request checks (shared by upgrades and v1 `$connect`
 * frames): a login attempt over the address's budget, no credentials while anonymous connections
 * are refused, Headers or onConnect to run in the pool, or a plain admission.
 */
export type AdmissionDecision =
  | { kind: 'limited' }
  | { kind: 'anonymous' }
  | { kind: 'viaPool'; headerData: Record<string, string> }
  | { kind: 'admit' };

export function decideAdmission(address: string, headerData: Record<string, string>, policy: UpgradePolicy): AdmissionDecision {
  const hasData = Object.keys(headerData).length > 0;
  // A login attempt (header data for the app's Headers) costs a token of the address's bucket;
  // without one the attempt is refused here, before any Header (scrypt) runs.
  if (hasData && !policy.attempts.take(address)) return { kind: 'limited' };
  if (policy.headerNames.length > 0 && !hasData && policy.anonymous === 'reject') return { kind: 'anonymous' };
  if (hasData || policy.onConnect) return { kind: 'viaPool', headerData };
  return { kind: 'admit' };
}

/**
 * Decides an upgrade in order: shutting down (503), untrusted address (403), disallowed origin
 * (403), header data too long (431); a lexicons.v1 client is then upgraded at once; otherwise
 * {@link decideAdmission}: login attempts over the address's budget (429), no credentials while
 * anonymous connections are refused, Headers or onConnect to run in the pool, or a plain admission.
 */
export function decideUpgrade(request: UpgradeRequest, policy: UpgradePolicy, accepting: boolean): UpgradeDecision {
  const { address, origin } = request;
  if (!accepting) return { kind: 'refuse', status: '503 Service Unavailable', body: 'server is shutting down' };
  if (!isTrusted(address, policy.trust)) {
    return { kind: 'refuse', status: '403 Forbidden', body: 'untrusted source', log: { status: 'UNTRUSTED-SOURCE-DENIED', data: { address } } };
  }
  if (!isOriginAllowed(origin, policy.origins)) {
    return { kind: 'refuse', status: '403 Forbidden', body: 'origin not allowed', log: { status: 'ORIGIN-DENIED', data: { address, origin } } };
  }
  const headerData = request.headerData();
  let dataBytes = 0;
  for (const name in headerData) dataBytes += headerData[name]!.length;
  if (dataBytes > policy.maxHeaderDataBytes) {
    const message = `header data of ${dataBytes} bytes over limits.maxMessageBytes: HTTP 431`;
    return { kind: 'refuse', status: '431 Request Header Fields Too Large', body: 'header data too large', log: { status: 'LIMIT', data: { address, message } } };
  }
  if (request.v1) return { kind: 'v1', headerData };
  const admission = decideAdmission(address, headerData, policy);
  if (admission.kind === 'limited') {
    const perMinute = policy.authAttemptsPerMinute;
    const message = `login attempts over ${perMinute} per minute: HTTP 429`;
    return { kind: 'refuse', status: '429 Too Many Requests', body: 'too many login attempts', retryAfterSeconds: Math.ceil(60 / perMinute), log: { status: 'LIMIT', data: { address, message } } };
  }
  if (admission.kind === 'anonymous') {
    return { kind: 'reject', reason: `no credentials (send one of the headers ${policy.headerNames.join(', ')} as an HTTP header or query parameter)` };
  }
  return admission;
}
