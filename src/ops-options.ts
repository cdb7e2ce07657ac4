/**
 * @module ops-options
 * The operations options of a Server (proxies, admin access, TLS): their types, their checks
 * with exact messages (run at construction and for the CLI flags and environment variables),
 * and how they resolve (run overrides, then Server options, then environment, then defaults).
 * Shared by both threads: nothing here opens a socket.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { ErrorCode, LexiconsError, messageOf } from './errors.js';

/** PEM files of the certificate (chain) and its private key; `passphrase` decrypts the key. */
export interface TlsOptions {
  cert: string;
  key: string;
  passphrase?: string;
}

/** Cluster mode (docs/cluster.md): this node and the Redis its cluster shares. */
export interface ClusterOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`) of the cluster's Redis. */
  redis: string;
  /** This node's name in the streams (letters, digits, `_.-`, at most 64). Default `<hostname>-<pid>`. */
  nodeId?: string;
}

/** The operations options, as in ServerOptions and RunOverrides. */
export interface OpsOptions {
  /**
   * Reverse proxies (addresses or CIDR ranges, `localhost` for both loopback addresses) whose
   * `X-Forwarded-For` is believed: behind them the client address is the rightmost address of
   * that header that is not itself a trusted proxy. Default env LEXICONS_TRUST_PROXY
   * (comma-separated) or none.
   */
  trustProxy?: string[];
  /**
   * Client addresses or CIDR ranges allowed the admin routes (`/metrics`) without a token; `*`
   * for any. Default env LEXICONS_ADMIN_TRUST (comma-separated) or `['localhost']` (loopback).
   */
  adminTrust?: string[];
  /** `Authorization: Bearer <adminToken>` opens the admin routes from anywhere. Default env LEXICONS_ADMIN_TOKEN; at least 16 characters. */
  adminToken?: string;
  /** Serve the admin routes (and /health, /ready) on this port only, without a token check; 0 picks a free port. */
  adminPort?: number;
  /** Interface of `adminPort`. Default: the server's `host`. */
  adminHost?: string;
  /** Serve wss:// and https:// (uWS SSLApp). Default env LEXICONS_TLS_CERT + LEXICONS_TLS_KEY (+ LEXICONS_TLS_PASSPHRASE). */
  tls?: TlsOptions;
  /** Run as one node of a cluster on Redis (docs/cluster.md). Default env LEXICONS_REDIS (+ LEXICONS_NODE_ID) or none. */
  cluster?: ClusterOptions;
}

/** Resolved operations options, as the runtime consumes them. */
export interface ResolvedOps {
  trustProxy: string[];
  adminTrust: string[];
  adminToken: string | null;
  adminPort: number | null;
  adminHost: string;
  tls: TlsOptions | null;
  cluster: Required<ClusterOptions> | null;
}

export const MIN_ADMIN_TOKEN_LENGTH = 16;
const TLS_KEYS = ['cert', 'key', 'passphrase'];

function optionError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, message);
}

/** Describes a value for a message without echoing secrets. */
function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  return value === undefined ? 'undefined' : JSON.stringify(value) ?? String(value);
}

/** `10.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8`, `localhost`, or (where allowed) `*`. */
function checkAddressEntry(entry: string, name: string, allowAny: boolean): void {
  const e = entry.trim().toLowerCase();
  if (e === '*') {
    if (allowAny) return;
    throw optionError(`${name}: "*" would let any client choose its address with X-Forwarded-For; list the proxies' addresses`);
  }
  if (e === 'localhost' || isIP(e) !== 0) return;
  const slash = e.indexOf('/');
  if (slash > 0) {
    const family = isIP(e.slice(0, slash));
    const bits = e.slice(slash + 1);
    if (family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)) return;
  }
  throw optionError(`${name}: ${JSON.stringify(entry)} is not an IP address or CIDR range (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8, localhost)`);
}

/** A list of addresses/CIDR ranges in the options: an array of strings (empty: none). */
export function validateAddressList(value: unknown, name: string, allowAny = false): string[] {
  if (!Array.isArray(value) || value.some((e) => typeof e !== 'string')) {
    throw optionError(`${name} must be a list of IP addresses or CIDR ranges, got ${JSON.stringify(value)}`);
  }
  for (const entry of value as string[]) checkAddressEntry(entry, name, allowAny);
  return (value as string[]).map((e) => e.trim());
}

/** A comma-separated list of addresses/CIDR ranges (a flag, an environment variable): at least one. */
export function parseAddressList(text: string, name: string, allowAny = false): string[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw optionError(`${name} must list at least one IP address or CIDR range, got ${JSON.stringify(text)}`);
  return validateAddressList(list, name, allowAny);
}

export function validateAdminToken(value: unknown, name = 'adminToken'): string {
  if (typeof value !== 'string' || value.length < MIN_ADMIN_TOKEN_LENGTH || /\s/.test(value)) {
    throw optionError(`${name} must be a string of at least ${MIN_ADMIN_TOKEN_LENGTH} characters without spaces, got ${describe(value)}`);
  }
  return value;
}

function validateHost(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw optionError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

export function validateTls(value: unknown, name = 'tls'): TlsOptions {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw optionError(`${name} must be an object { cert, key, passphrase? } of PEM file paths, got ${JSON.stringify(value)}`);
  }
  const t = value as Record<string, unknown>;
  for (const key of Object.keys(t)) {
    if (!TLS_KEYS.includes(key)) throw optionError(`${name}.${key} is not a known TLS option (known: ${TLS_KEYS.join(', ')})`);
  }
  if (typeof t.cert !== 'string' || t.cert.trim() === '') throw optionError(`${name}.cert must be the path of a PEM certificate file, got ${JSON.stringify(t.cert)}`);
  if (typeof t.key !== 'string' || t.key.trim() === '') throw optionError(`${name}.key must be the path of a PEM private key file, got ${JSON.stringify(t.key)}`);
  if (t.passphrase !== undefined && typeof t.passphrase !== 'string') throw optionError(`${name}.passphrase must be a string, got ${describe(t.passphrase)}`);
  return { cert: t.cert, key: t.key, ...(t.passphrase !== undefined ? { passphrase: t.passphrase as string } : {}) };
}

/** Checks a cluster option (`cluster`, `--redis` / `--node-id`, LEXICONS_REDIS / LEXICONS_NODE_ID). */
export function validateCluster(value: unknown, name = 'cluster'): ClusterOptions {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw optionError(`${name} must be an object { redis, nodeId? }, got ${describe(value)}`);
  const c = value as Record<string, unknown>;
  for (const key of Object.keys(c)) if (key !== 'redis' && key !== 'nodeId') throw optionError(`${name}.${key} is not a known cluster option (known: redis, nodeId)`);
  let url: URL | null = null;
  try {
    url = typeof c.redis === 'string' ? new URL(c.redis) : null;
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw optionError(`${name}.redis must be a redis://host:port URL, got ${typeof c.redis === 'string' ? JSON.stringify(c.redis.replace(/\/\/[^@/]*@/, '//***@')) : describe(c.redis)}`);
  }
  if (c.nodeId !== undefined && (typeof c.nodeId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(c.nodeId))) {
    throw optionError(`${name}.nodeId must be 1 to 64 letters, digits, '_', '.' or '-', got ${JSON.stringify(c.nodeId)}`);
  }
  return { redis: c.redis as string, ...(c.nodeId !== undefined ? { nodeId: c.nodeId as string } : {}) };
}

function envCluster(env: NodeJS.ProcessEnv): ClusterOptions | null {
  if (env.LEXICONS_REDIS === undefined || env.LEXICONS_REDIS === '') return null;
  return validateCluster({ redis: env.LEXICONS_REDIS, ...(env.LEXICONS_NODE_ID ? { nodeId: env.LEXICONS_NODE_ID } : {}) }, 'LEXICONS_REDIS');
}

/** Checks the operations options of a Server at construction. */
export function validateOpsOptions(o: OpsOptions, validatePort: (value: unknown, name: string) => number): void {
  if (o.trustProxy !== undefined) validateAddressList(o.trustProxy, 'trustProxy');
  if (o.adminTrust !== undefined) validateAddressList(o.adminTrust, 'adminTrust', true);
  if (o.adminToken !== undefined) validateAdminToken(o.adminToken);
  if (o.adminPort !== undefined) validatePort(o.adminPort, 'adminPort');
  if (o.adminHost !== undefined) validateHost(o.adminHost, 'adminHost');
  if (o.tls !== undefined) validateTls(o.tls);
  if (o.cluster !== undefined) validateCluster(o.cluster);
}

function envTls(env: NodeJS.ProcessEnv): TlsOptions | null {
  const { LEXICONS_TLS_CERT: cert, LEXICONS_TLS_KEY: key, LEXICONS_TLS_PASSPHRASE: passphrase } = env;
  if (cert === undefined && key === undefined) return null;
  if (cert === undefined || key === undefined) throw optionError('LEXICONS_TLS_CERT and LEXICONS_TLS_KEY go together (only one is set)');
  return validateTls({ cert, key, ...(passphrase !== undefined ? { passphrase } : {}) }, 'LEXICONS_TLS');
}

/** Run overrides, then the Server's options, then the environment, then the defaults. */
export function resolveOps(o: OpsOptions, overrides: OpsOptions, host: string, port: number, env: NodeJS.ProcessEnv): ResolvedOps {
  const trustProxy = overrides.trustProxy ?? o.trustProxy ?? (env.LEXICONS_TRUST_PROXY ? parseAddressList(env.LEXICONS_TRUST_PROXY, 'LEXICONS_TRUST_PROXY') : []);
  const adminTrust = overrides.adminTrust ?? o.adminTrust ?? (env.LEXICONS_ADMIN_TRUST ? parseAddressList(env.LEXICONS_ADMIN_TRUST, 'LEXICONS_ADMIN_TRUST', true) : ['localhost']);
  const token = overrides.adminToken ?? o.adminToken ?? (env.LEXICONS_ADMIN_TOKEN !== undefined ? validateAdminToken(env.LEXICONS_ADMIN_TOKEN, 'LEXICONS_ADMIN_TOKEN') : null);
  const adminPort = overrides.adminPort ?? o.adminPort ?? null;
  if (adminPort !== null && adminPort !== 0 && adminPort === port) throw optionError(`adminPort must differ from port (both ${port})`);
  const tls = overrides.tls ?? o.tls ?? envTls(env);
  const c = overrides.cluster ?? o.cluster ?? envCluster(env);
  const cluster = c === null ? null : { redis: c.redis, nodeId: c.nodeId ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 50)}-${process.pid}` };
  return { trustProxy, adminTrust, adminToken: token, adminPort, adminHost: overrides.adminHost ?? o.adminHost ?? host, tls, cluster };
}

/**
 * Reads the TLS files and loads them as Node would, so that a missing file, a wrong passphrase
 * or a key that does not match the certificate is an exact start-up error (uWS only prints one).
 */
export function checkTlsFiles(tls: TlsOptions): void {
  const read = (file: string, what: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw optionError(`tls.${what}: cannot read ${file}: ${messageOf(err)}`);
    }
  };
  const cert = read(tls.cert, 'cert');
  const key = read(tls.key, 'key');
  try {
    createSecureContext({ cert, key, ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}) });
  } catch (err) {
    throw optionError(`tls: ${tls.cert} and ${tls.key} do not load as a certificate and its private key: ${messageOf(err)}`);
  }
}

/**
 * A checked list of addresses and CIDR ranges (net.BlockList), matched against normalized
 * client addresses (main/upgrade.ts normalizeAddress). `localhost` stands for 127.0.0.0/8 and ::1.
 */
export class AddressList {
  readonly any: boolean;
  readonly #list = new BlockList();

  constructor(entries: readonly string[]) {
    let any = false;
    for (const raw of entries) {
      const e = raw.trim().toLowerCase();
      if (e === '*') any = true;
      else if (e === 'localhost') {
        this.#list.addSubnet('127.0.0.0', 8, 'ipv4');
        this.#list.addAddress('::1', 'ipv6');
      } else if (e.includes('/')) {
        const [net, bits] = e.split('/') as [string, string];
        this.#list.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
      } else this.#list.addAddress(e, isIP(e) === 6 ? 'ipv6' : 'ipv4');
    }
    this.any = any;
  }

  has(address: string): boolean {
    if (this.any) return true;
    const family = isIP(address);
    if (family === 0) return false;
    return this.#list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}
