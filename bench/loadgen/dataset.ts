/**
 * @module bench/loadgen/dataset
 * The benchmark's data, shared by every system so they do the same work: user and channel names,
 * the seeded rows of the `read` workload (generated in memory by the peers, written as CSV into
 * a lexicons data folder), the password hashing of Register/Login, and the in-memory chat store
 * that the two peers (raw uWS, Socket.IO) serve from.
 */
import { createHash, randomUUID, scrypt, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';

/** `u0000042@bench.test`: user k (zero-padded so a frame template can patch k in place). */
export const userEmail = (k: number): string => `u${String(k).padStart(7, '0')}@bench.test`;
/** Template text of {@link userEmail} with a 7-digit slot `k`. */
export const USER_EMAIL_TEMPLATE = 'u{k:7z}@bench.test';
/** `c000042`: channel k of the seeded chat rows. */
export const channelName = (k: number): string => `c${String(k).padStart(6, '0')}`;
export const CHANNEL_TEMPLATE = 'c{k:6z}';
/** The examples/chat Register header wants at least 8 characters. */
export const PASSWORD = 'bench-password';
/** User k of those the benchmark registers and logs in with (distinct from the seeded users). */
export const loginUser = (k: number): { email: string; password: string } => ({ email: `login${k}@bench.test`, password: PASSWORD });

/**
 * Password hashing of Register/Login in the peers: `scrypt` with the parameters lexicons'
 * `utils.encrypt` uses (N=16384, r=8, p=1, 32-byte key, so the peers pay what lexicons pays),
 * or the cheaper `sha256` / `none` for quick checks (lexicons always uses scrypt).
 */
export type HashKind = 'scrypt' | 'sha256' | 'none';

export async function hashPassword(kind: HashKind, password: string, salt: string): Promise<string> {
  if (kind === 'none') return password;
  if (kind === 'sha256') return createHash('sha256').update(salt).update(password).digest('hex');
  const key = await new Promise<Buffer>((resolve, reject) => scrypt(password, salt, 32, { N: 16384, r: 8, p: 1 }, (err, k) => (err ? reject(err) : resolve(k))));
  return key.toString('hex');
}

export async function verifyPassword(kind: HashKind, password: string, salt: string, stored: string): Promise<boolean> {
  const h = Buffer.from(await hashPassword(kind, password, salt));
  const s = Buffer.from(stored);
  return h.length === s.length && timingSafeEqual(h, s);
}

export interface UserRow {
  pk: string;
  email: string;
  password: string;
  salt: string;
}

export interface ChatRow {
  pk: string;
  author: string;
  channel: string;
  content: string;
  timestamp: number;
}

/** Seeded row k of ChatMessage: channel k mod `channels`, a short content, a fixed author. */
export function seedChatRow(k: number, channels: number, author: string): ChatRow {
  return { pk: `m${k}`, author, channel: channelName(k % channels), content: `seeded message ${k}`, timestamp: 1_700_000_000 + k / 1000 };
}

/**
 * A stored password nobody logs in with, shaped as an original-lexicons hash (64 hex chars) so
 * the User model's `encryptIfPlain` transform keeps it as is when the CSV loads.
 */
export const SEEDED_PASSWORD = '0'.repeat(64);

/** Seeded user k: email {@link userEmail}(k), a password hash nobody logs in with. */
export function seedUserRow(k: number): UserRow {
  return { pk: `s${k}`, email: userEmail(k), password: SEEDED_PASSWORD, salt: '' };
}

/** What `Register` / `Login` header data looks like. */
export interface Credentials {
  email?: unknown;
  password?: unknown;
}

/**
 * The chat app of the peers, in memory: users by email, messages in one array plus a per-channel
 * index (what GetChatList reads), as a hand-written Socket.IO or uWS app would keep them.
 */
export class MemoryChat {
  readonly users = new Map<string, UserRow>();
  readonly messages: ChatRow[] = [];
  readonly byChannel = new Map<string, ChatRow[]>();
  readonly hash: HashKind;

  constructor(hash: HashKind) {
    this.hash = hash;
  }

  /** Fill with `rows` chat messages over `channels` channels and `users` lookup users. */
  seed(rows: number, channels: number, users: number): void {
    for (let k = 0; k < users; k++) {
      const u = seedUserRow(k);
      this.users.set(u.email, u);
    }
    for (let k = 0; k < rows; k++) this.#add(seedChatRow(k, channels, 's0'));
  }

  /** Register: creates the user; false when the email is taken or the data is malformed. */
  async register(data: Credentials): Promise<UserRow | null> {
    if (typeof data.email !== 'string' || typeof data.password !== 'string') return null;
    if (this.users.has(data.email)) return null;
    const salt = randomUUID();
    const user: UserRow = { pk: randomUUID(), email: data.email, password: await hashPassword(this.hash, data.password, salt), salt };
    if (this.users.has(data.email)) return null; // registered meanwhile
    this.users.set(user.email, user);
    return user;
  }

  /** Login: the user when email and password match, else null. */
  async login(data: Credentials): Promise<UserRow | null> {
    if (typeof data.email !== 'string' || typeof data.password !== 'string') return null;
    const user = this.users.get(data.email);
    if (user === undefined) return null;
    return (await verifyPassword(this.hash, data.password, user.salt, user.password)) ? user : null;
  }

  createMessage(author: string, channel: unknown, content: unknown): ChatRow | string {
    if (typeof channel !== 'string' || typeof content !== 'string') return 'CreateChatMessage needs {channel: string, content: string}';
    const row: ChatRow = { pk: randomUUID(), author, channel, content, timestamp: Date.now() / 1000 };
    this.#add(row);
    return row;
  }

  /** GetChatList as examples/chat answers it: the channel's latest `limit` messages, oldest first. */
  chatList(channel: unknown, limit: unknown): { channel: string; messages: ChatRow[] } | string {
    if (typeof channel !== 'string') return 'GetChatList needs {channel: string}';
    const n = typeof limit === 'number' && Number.isInteger(limit) ? Math.min(Math.max(limit, 1), 1000) : 100;
    return { channel, messages: (this.byChannel.get(channel) ?? []).slice(-n) };
  }

  /** Get-by-unique-field: the user with this email, without its secrets, or null. */
  getUser(email: unknown): { pk: string; email: string } | null {
    const u = typeof email === 'string' ? this.users.get(email) : undefined;
    return u === undefined ? null : { pk: u.pk, email: u.email };
  }

  #add(row: ChatRow): void {
    this.messages.push(row);
    const list = this.byChannel.get(row.channel);
    if (list) list.push(row);
    else this.byChannel.set(row.channel, [row]);
  }
}

/** Parse header data as the original did: JSON, with single quotes read as double quotes. */
export function parseHeaderData(raw: string): Credentials | null {
  if (raw === '') return null;
  try {
    const value: unknown = JSON.parse(raw.replaceAll("'", '"'));
    return typeof value === 'object' && value !== null ? (value as Credentials) : null;
  } catch {
    return null;
  }
}

/** Write one CSV file of `rows` rows (`row(k)` gives the cells, already CSV-safe) in 1 MiB writes. */
export async function writeCsv(path: string, header: readonly string[], rows: number, row: (k: number) => readonly (string | number)[]): Promise<void> {
  const out = createWriteStream(path);
  let chunk = header.join(',') + '\n';
  for (let k = 0; k < rows; k++) {
    chunk += row(k).join(',') + '\n';
    if (chunk.length >= 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
}

/** Opening balance of each seeded account of the `transfer` workload. */
export const ACCOUNT_BALANCE = 1_000_000;

/**
 * Seed a lexicons data folder for the `read` workload: `User.csv` (`users` rows) and
 * `ChatMessage.csv` (`rows` rows over `channels` channels), and for the `transfer` workload
 * `Account.csv` (`accounts` rows `a0`.., when > 0), in the format of docs/csv-format.md.
 * Cells hold no commas or quotes, so none needs quoting.
 */
export async function seedDataFolder(dir: string, rows: number, channels: number, users: number, accounts = 0): Promise<void> {
  if (accounts > 0) await writeCsv(join(dir, 'Account.csv'), ['pk', 'balance'], accounts, (k) => [`a${k}`, ACCOUNT_BALANCE]);
  await writeCsv(join(dir, 'User.csv'), ['pk', 'email', 'password'], users, (k) => {
    const u = seedUserRow(k);
    return [u.pk, u.email, u.password];
  });
  await writeCsv(join(dir, 'ChatMessage.csv'), ['pk', 'author', 'channel', 'content', 'timestamp'], rows, (k) => {
    const r = seedChatRow(k, channels, 's0');
    return [r.pk, r.author, r.channel, r.content, r.timestamp];
  });
}
