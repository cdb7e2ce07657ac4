/**
 * @module bench/peers/peer-setup
 * What every benchmark peer shares: its command-line options (port, host, seeded rows/channels/
 * users, password hash kind, plus peer-specific flags), the seeded in-memory chat store, and the
 * per-connection session shape.
 */
import { parseArgs } from 'node:util';
import { MemoryChat, type HashKind, type UserRow } from '../loadgen/dataset.js';

export interface PeerSession {
  user: UserRow | null;
  registered: boolean;
}

const COMMON = {
  port: { type: 'string', default: '0' },
  host: { type: 'string', default: '127.0.0.1' },
  rows: { type: 'string', default: '0' },
  channels: { type: 'string', default: '1000' },
  users: { type: 'string', default: '0' },
  hash: { type: 'string', default: 'scrypt' },
} as const;

export interface Peer {
  store: MemoryChat;
  port: number;
  host: string;
  /** The peer-specific boolean flags asked for, by name. */
  flags: Record<string, boolean>;
}

/** Parses the common options plus the peer's boolean `flags`, and builds the seeded store. */
export function setUpPeer(flags: readonly string[] = []): Peer {
  const options: Record<string, { type: 'string' | 'boolean'; default: string | boolean }> = { ...COMMON };
  for (const flag of flags) options[flag] = { type: 'boolean', default: false };
  const values = parseArgs({ options }).values as Record<string, string | boolean>;
  const hash = values.hash as HashKind;
  if (!['scrypt', 'sha256', 'none'].includes(hash)) throw new Error(`--hash must be scrypt, sha256 or none, got ${String(values.hash)}`);
  const store = new MemoryChat(hash);
  store.seed(Number(values.rows), Number(values.channels), Number(values.users));
  return { store, port: Number(values.port), host: String(values.host), flags: Object.fromEntries(flags.map((f) => [f, values[f] === true])) };
}
