/**
 * @module utils
 * Password hashing for applications (`utils.encrypt`, `utils.verify`, `utils.needsRehash`).
 *
 * New hashes use scrypt from node:crypto with a random 16-byte salt, stored as
 * `scrypt$N$r$p$<salt base64>$<hash base64>`. `verify` also accepts the original lexicons'
 * format (64 hex chars: PBKDF2-HMAC-SHA256, 100,000 iterations, salt from env `SALT`, default
 * empty) so an existing user base can log in; `needsRehash` then says the stored value should be
 * replaced by `encrypt(raw)`. Comparisons are timing-safe.
 *
 * These functions are synchronous (they run in Signals, Headers and field transforms, all of
 * which execute in worker threads, never on the socket thread).
 *
 * @example
 * const stored = utils.encrypt('hunter2');     // 'scrypt$16384$8$1$...$...'
 * utils.verify('hunter2', stored);             // true
 * utils.verify('pw', '4d8194b2daa1...0f07');   // true (original lexicons hash, SALT unset)
 * utils.needsRehash('4d8194b2daa1...0f07');    // true
 */
import { pbkdf2Sync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { ErrorCode, LexiconsError } from './errors.js';

/** scrypt cost parameters for new hashes (~50 ms per hash on a laptop core; 16 MiB memory). */
const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;
const SCRYPT_PREFIX = 'scrypt$';
const LEGACY_HEX = /^[0-9a-f]{64}$/;
const LEGACY_ITERATIONS = 100_000;

function checkRaw(raw: unknown): string {
  if (typeof raw !== 'string') throw new LexiconsError(ErrorCode.TYPE, `password must be a string, got ${raw === null ? 'null' : typeof raw}`);
  return raw;
}

/** Whether `value` already is a hash made by {@link encrypt} (scrypt format). */
export function isHash(value: unknown): value is string {
  return typeof value === 'string' && parseScrypt(value) !== undefined;
}

/** Whether `value` looks like a hash of the original lexicons (64 lowercase hex chars). */
export function isLegacyHash(value: unknown): value is string {
  return typeof value === 'string' && LEGACY_HEX.test(value);
}

/** Hashes a password with scrypt and a random salt. */
export function encrypt(raw: string): string {
  const password = checkRaw(raw);
  const salt = randomBytes(SCRYPT.saltLength);
  const hash = scryptSync(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  return `${SCRYPT_PREFIX}${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

interface ScryptParts {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function parseScrypt(stored: string): ScryptParts | undefined {
  if (!stored.startsWith(SCRYPT_PREFIX)) return undefined;
  const parts = stored.split('$');
  if (parts.length !== 6) return undefined;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (![N, R, P].every((x) => Number.isSafeInteger(x) && x > 0) || (N & (N - 1)) !== 0) return undefined;
  const saltBuf = Buffer.from(salt, 'base64');
  const hashBuf = Buffer.from(hash, 'base64');
  if (saltBuf.length === 0 || hashBuf.length < 16) return undefined;
  return { N, r: R, p: P, salt: saltBuf, hash: hashBuf };
}

/** The original lexicons' hash: PBKDF2-HMAC-SHA256, 100,000 iterations, salt from env SALT. */
export function legacyHash(raw: string, salt: string = process.env.SALT ?? ''): string {
  return pbkdf2Sync(checkRaw(raw), salt, LEGACY_ITERATIONS, 32, 'sha256').toString('hex');
}

/**
 * Checks a password against a stored hash (scrypt, or the original's PBKDF2 hex). Timing-safe;
 * returns false (never throws) for a malformed stored value or a non-string password.
 */
export function verify(raw: unknown, stored: unknown): boolean {
  if (typeof raw !== 'string' || typeof stored !== 'string') return false;
  const parts = parseScrypt(stored);
  if (parts) {
    const memory = 128 * parts.N * parts.r * parts.p;
    if (memory > 256 * 1024 * 1024) return false; // refuse absurd parameters from a tampered row
    const actual = scryptSync(raw, parts.salt, parts.hash.length, { N: parts.N, r: parts.r, p: parts.p, maxmem: memory * 2 });
    return timingSafeEqual(actual, parts.hash);
  }
  if (LEGACY_HEX.test(stored)) {
    const actual = Buffer.from(legacyHash(raw), 'hex');
    return timingSafeEqual(actual, Buffer.from(stored, 'hex'));
  }
  return false;
}

/** True when the stored hash is not a current scrypt hash (legacy PBKDF2 or weaker parameters). */
export function needsRehash(stored: unknown): boolean {
  if (typeof stored !== 'string') return true;
  const parts = parseScrypt(stored);
  return !parts || parts.N < SCRYPT.N || parts.r < SCRYPT.r || parts.p < SCRYPT.p;
}

/**
 * Field transform for password columns (the seed's `password` property setter): hashes raw
 * values and keeps values that already are scrypt hashes, so writing back a stored hash never
 * double-hashes. The original's legacy hex hashes are not recognized here on purpose (a
 * 64-hex-char password must not be stored in plain): rows loaded from CSV files keep them
 * (loads do not apply transforms), and `verify` + `needsRehash` replace them at login.
 */
export function encryptIfPlain(value: string): string {
  return isHash(value) ? value : encrypt(value);
}

export const utils = { encrypt, verify, needsRehash, isHash, isLegacyHash, legacyHash, encryptIfPlain } as const;
