/**
 * @module durability-options
 * The `durability` option of a Server (docs/durability.md) and its checks: the fsync policy and
 * the snapshot interval, from the run overrides (CLI), the Server's option, the environment.
 */
import { optionError } from './errors.js';
import { FSYNC_POLICIES, type FsyncPolicy } from './storage/wal.js';

/** Durability of the data folder (docs/durability.md). */
export interface DurabilityOptions {
  /**
   * When an acknowledged write is on disk: `always` (fdatasync before the reply), `everysec` (a
   * background fdatasync once a second; a power cut loses at most ~1 s), `no` (the OS decides).
   * Default env LEXICONS_FSYNC or `everysec` (`lexicons start --fsync`).
   */
  fsync?: FsyncPolicy;
  /** Seconds between CSV snapshots (they bound the log and replay time). Default env LEXICONS_SNAPSHOT_SECONDS or 300. */
  snapshotSeconds?: number;
}

/** Largest snapshot interval a Node timer can hold (2^31 - 1 ms); a longer one would fire at once. */
export const MAX_SNAPSHOT_SECONDS = 2_147_483;

export function validateFsync(value: unknown, name = 'durability.fsync'): FsyncPolicy {
  if (typeof value !== 'string' || !FSYNC_POLICIES.includes(value as FsyncPolicy)) {
    throw optionError(`${name} must be one of ${FSYNC_POLICIES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as FsyncPolicy;
}

export function validateSnapshotSeconds(value: unknown, name = 'durability.snapshotSeconds'): number {
  const n = typeof value === 'string' && /^\d+(\.\d+)?$|^\.\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0.001 || n > MAX_SNAPSHOT_SECONDS) {
    throw optionError(`${name} must be a number of seconds from 0.001 to ${MAX_SNAPSHOT_SECONDS}, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function validateDurability(value: unknown): DurabilityOptions {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw optionError(`durability must be an object { fsync?, snapshotSeconds? }, got ${JSON.stringify(value)}`);
  const d = value as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    if (key !== 'fsync' && key !== 'snapshotSeconds') throw optionError(`durability.${key} is not a known durability option (known: fsync, snapshotSeconds)`);
  }
  if (d.fsync !== undefined) validateFsync(d.fsync);
  if (d.snapshotSeconds !== undefined) {
    if (typeof d.snapshotSeconds !== 'number') throw optionError(`durability.snapshotSeconds must be a number of seconds from 0.001 to ${MAX_SNAPSHOT_SECONDS}, got ${JSON.stringify(d.snapshotSeconds)}`);
    validateSnapshotSeconds(d.snapshotSeconds);
  }
  return d as DurabilityOptions;
}

/**
 * Durability settings: the run overrides (CLI --fsync, --snapshot-seconds), then the Server's
 * `durability` option, then env LEXICONS_FSYNC / LEXICONS_SNAPSHOT_SECONDS, then everysec / 300 s.
 */
export function durabilitySettings(
  server: DurabilityOptions | undefined,
  overrides: DurabilityOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Required<DurabilityOptions> {
  const fsync = overrides?.fsync ?? server?.fsync ?? (env.LEXICONS_FSYNC === undefined ? 'everysec' : validateFsync(env.LEXICONS_FSYNC, 'LEXICONS_FSYNC'));
  const snapshotSeconds =
    overrides?.snapshotSeconds ??
    server?.snapshotSeconds ??
    (env.LEXICONS_SNAPSHOT_SECONDS === undefined ? 300 : validateSnapshotSeconds(env.LEXICONS_SNAPSHOT_SECONDS, 'LEXICONS_SNAPSHOT_SECONDS'));
  return { fsync: validateFsync(fsync), snapshotSeconds: validateSnapshotSeconds(snapshotSeconds) };
}
