/**
 * @module limits
 * `limits` of a Server (per connection and per call) and their defaults. Re-exported by
 * server.ts; docs/protocol.md and docs/channels.md describe what each one does on the wire.
 */
import { ErrorCode, LexiconsError } from './errors.js';

export interface ServerLimits {
  /** Largest inbound frame in bytes; larger ones close the connection with 1009. Default 1 MiB. */
  maxMessageBytes?: number;
  /** Seconds without traffic before a connection is closed (pings keep it alive). Default 120. */
  idleTimeoutSeconds?: number;
  /** Bytes buffered for a slow client before it is dropped. Default 4 MiB. */
  maxBackpressureBytes?: number;
  /** Inbound frames per second allowed per connection (token bucket); excess frames get an error. Default 1000. */
  messagesPerSecond?: number;
  /** Calls per frame (a list frame). Default 100. */
  maxCallsPerFrame?: number;
  /** A Signal/Task/Header running longer than this is aborted. Default 10000 ms. */
  executionTimeoutMs?: number;
  /**
   * Upgrades carrying header data (login attempts) per minute per client address (token bucket,
   * bursts up to the same number); excess upgrades get HTTP 429 before any Header runs. Default 30.
   */
  authAttemptsPerMinute?: number;
  /** Old-generation heap of each worker thread in MiB; a Signal exceeding it kills only its worker. Default 512. */
  workerMemoryMb?: number;
  /** Seconds a lexicons.v1 client has to send its `$connect` frame after the upgrade (else close 1008). Default 10. */
  connectTimeoutSeconds?: number;
  /**
   * Seconds a closed lexicons.v1 session stays resumable with its token (auth, meta, channels,
   * outcomes of keyed calls); presence members leave when it expires. Default 120.
   */
  resumeGraceSeconds?: number;
  /** Most publications one join recovers from history; a larger gap answers `recovered: false`. Default 1000. */
  maxRecoveredPublications?: number;
}

export const DEFAULT_LIMITS: Required<ServerLimits> = {
  maxMessageBytes: 1 << 20,
  idleTimeoutSeconds: 120,
  maxBackpressureBytes: 4 << 20,
  messagesPerSecond: 1000,
  maxCallsPerFrame: 100,
  executionTimeoutMs: 10_000,
  authAttemptsPerMinute: 30,
  workerMemoryMb: 512,
  connectTimeoutSeconds: 10,
  resumeGraceSeconds: 120,
  maxRecoveredPublications: 1000,
};

/** Longest `limits.connectTimeoutSeconds` a Node timer can hold (2^31 - 1 ms). */
export const MAX_CONNECT_TIMEOUT_SECONDS = 2_147_483;

/** Checks `limits` (each known, each in range), with the exact message of the first wrong one. */
export function validateLimits(limits: ServerLimits): void {
  const fail = (message: string) => new LexiconsError(ErrorCode.OPTION, message);
  for (const [key, value] of Object.entries(limits)) {
    if (!(key in DEFAULT_LIMITS)) throw fail(`limits.${key} is not a known limit (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    if ((key === 'connectTimeoutSeconds' || key === 'resumeGraceSeconds') && !(typeof value === 'number' && value >= 0.001 && value <= MAX_CONNECT_TIMEOUT_SECONDS)) {
      throw fail(`limits.${key} must be a number of seconds from 0.001 to ${MAX_CONNECT_TIMEOUT_SECONDS}, got ${JSON.stringify(value)}`);
    }
    if (key === 'maxRecoveredPublications' && !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 1)) {
      throw fail(`limits.maxRecoveredPublications must be a positive integer, got ${JSON.stringify(value)}`);
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw fail(`limits.${key} must be a positive number, got ${JSON.stringify(value)}`);
  }
}
