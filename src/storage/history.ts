/**
 * @module storage/history
 * Per-channel publication history: what a commit does with the publications, resets and trims a
 * transaction recorded (the "sequenced append"), and the lock-free reads of a channel's history.
 * The tables are described in history-tables.ts; the API is `Txn.publish` / `Txn.resetHistory`
 * and `SharedStore.history` / `channelPosition` / `resetHistory` / `trimHistory`.
 *
 * WHY OFFSETS ARE ASSIGNED AT COMMIT
 *
 * A transaction only records `(channel, text)`. Its committer, holding the commit lock and after
 * the transaction validated, reads each channel's row at the LATEST commit (not at the
 * transaction's snapshot), assigns offsets top+1, top+2, ... in publish order, and adds the
 * publication rows and the updated channel row to the same commit (the same WAL record, the same
 * publish point). The lock serializes committers, so offsets follow commit order and grow by
 * exactly 1 per channel with no gap and no duplicate; a publication becomes visible and durable
 * exactly with its transaction's other writes, and vanishes with them if the commit fails (CAPACITY,
 * a refused WAL append, a writer killed before its publish point: the repair in commit-lock.ts
 * truncates these rows like any other). Nothing is added to the transaction's read set: the read
 * happens after validation, under the lock, so publishing can never make a transaction conflict,
 * and two workers publishing to one channel both commit, one after the other.
 *
 * Trimming happens in the same place: after appending, the committer deletes the channel's oldest
 * rows beyond the policy's `size` or older than `maxAgeSeconds`, at most 2 rows per row it added
 * (bounded work inside the lock; a backlog, e.g. after a policy shrank, drains over the next
 * commits or a `trimHistory` sweep). Deleting from `oldest` upward keeps the retained offsets one
 * contiguous range [oldest, offset], which is what lets a reader probe offsets by pk.
 *
 * Locks. History takes no lock of its own: the offsets are read and written inside the commit
 * lock the transaction takes anyway (one lock, so no ordering to get wrong), before the WAL append
 * of commit-protocol.ts step 2 (the append still happens under the same lock, so the log's record
 * order is the offset order). The main thread never waits for it: `trimHistory` only try-locks there.
 *
 * Reads take no lock: a reader loads a snapshot, reads the channel row and then the publication
 * rows `<offset>@<channel>` through the pk index at that snapshot, so it sees a commit's
 * publications and the channel row that counts them together, or neither (the MVCC rules of
 * commit-protocol.ts). The cost is one pk probe per item returned.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChannelPosition, HistoryItem, HistoryPage, HistoryPolicy, HistoryPolicyResolver, HistoryQuery, Publication } from './api.js';
import { CHANNEL_TABLE, PUBLICATION_TABLE, publicationPk } from './history-tables.js';
import type { TableIndex } from './indexes.js';
import type { Row } from './query.js';
import type { SharedTable } from './table.js';
import type { Transaction } from './transaction.js';
import type { Pending, TablePlan } from './write-set.js';

/** Table ids of the history tables in a store's schema. */
export interface HistoryTableIds {
  readonly channel: number;
  readonly publication: number;
}

/** The history ids of a schema's table-id map, or undefined when it has no history tables. */
export function historyTableIds(tableIds: ReadonlyMap<string, number>): HistoryTableIds | undefined {
  const channel = tableIds.get(CHANNEL_TABLE);
  const publication = tableIds.get(PUBLICATION_TABLE);
  return channel === undefined || publication === undefined ? undefined : { channel, publication };
}

/** A fresh epoch: 9 random bytes, 12 characters of base64url. */
export function newEpoch(): string {
  return randomBytes(9).toString('base64url');
}

/** One history operation a transaction recorded, applied at commit in the order recorded. */
export type HistoryOp =
  | { readonly kind: 'publish'; readonly channel: string; readonly text: string; readonly policy: HistoryPolicy }
  | { readonly kind: 'reset'; readonly channel: string };

/** A trim sweep over every channel (SharedStore.trimHistory), applied at commit. */
export interface SweepRequest {
  readonly now: number;
  readonly maxRows: number;
  readonly policyOf: HistoryPolicyResolver;
}

/** trimHistory's arguments, checked (OPTION errors), as a sweep request. */
export function sweepRequest(policyOf: HistoryPolicyResolver | undefined, now: number, options: { maxRows?: number }): SweepRequest {
  if (!policyOf) throw new LexiconsError(ErrorCode.OPTION, 'trimHistory: set store.historyPolicy first (the sweep trims by it)');
  const maxRows = options.maxRows ?? 10_000;
  if (!Number.isSafeInteger(maxRows) || maxRows < 1) throw new LexiconsError(ErrorCode.OPTION, 'trimHistory: options.maxRows must be a positive integer');
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new LexiconsError(ErrorCode.OPTION, 'trimHistory: now must be a number of ms since the Unix epoch');
  return { now, maxRows, policyOf };
}

/** What the history part of one commit did. */
export interface HistoryOutcome {
  readonly publications: Publication[];
  /** Publication rows deleted by trimming and resets. */
  deleted: number;
  /** A trim stopped at its budget with rows still to delete. */
  more: boolean;
}

/** Checks a policy the resolver returned for `channel` (an OPTION error naming the channel). */
export function checkPolicy(channel: string, policy: unknown): HistoryPolicy {
  const where = `history policy of channel ${JSON.stringify(channel)}`;
  if (typeof policy !== 'object' || policy === null) throw new LexiconsError(ErrorCode.OPTION, `${where}: expected { size?, maxAgeSeconds? } or null, got ${typeof policy}`);
  const { size, maxAgeSeconds } = policy as HistoryPolicy;
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 1)) throw new LexiconsError(ErrorCode.OPTION, `${where}: size must be a positive integer, got ${String(size)}`);
  if (maxAgeSeconds !== undefined && (typeof maxAgeSeconds !== 'number' || !Number.isFinite(maxAgeSeconds) || maxAgeSeconds <= 0)) {
    throw new LexiconsError(ErrorCode.OPTION, `${where}: maxAgeSeconds must be a positive number, got ${String(maxAgeSeconds)}`);
  }
  return policy as HistoryPolicy;
}

/** A table and this thread's index of it, caught up (the index must be synced by the caller). */
export interface TableView {
  readonly table: SharedTable;
  readonly index: TableIndex;
}

/** The channel row of `channel` at snapshot s, or null. */
export function readPosition(channels: TableView, channel: string, s: number): ChannelPosition | null {
  const v = channels.index.lookupPk(channel, s);
  if (v < 0) return null;
  const t = channels.table;
  return { epoch: t.byName.get('epoch')!.read(v) as string, offset: t.byName.get('offset')!.read(v) as number, oldest: t.byName.get('oldest')!.read(v) as number };
}

function checkQuery(query: HistoryQuery | undefined): { after: number; limit: number } {
  const after = query?.after ?? 0;
  const limit = query?.limit ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(after) || after < 0) throw new LexiconsError(ErrorCode.OPTION, `history: after must be a non-negative integer, got ${String(after)}`);
  if (!Number.isSafeInteger(limit) || limit < 0) throw new LexiconsError(ErrorCode.OPTION, `history: limit must be a non-negative integer, got ${String(limit)}`);
  return { after, limit };
}

/**
 * The retained publications of `channel` with offset > `after`, oldest first, at most `limit`,
 * at snapshot s: one pk probe per offset of [max(after + 1, oldest), offset].
 */
export function readHistory(channels: TableView, publications: TableView, channel: string, s: number, query?: HistoryQuery): HistoryPage | null {
  const { after, limit } = checkQuery(query);
  const pos = readPosition(channels, channel, s);
  if (pos === null) return null;
  const items: HistoryItem[] = [];
  const t = publications.table;
  const time = t.byName.get('time')!;
  const text = t.byName.get('text')!;
  const from = Math.max(after + 1, pos.oldest);
  const to = Math.min(pos.offset, from + limit - 1);
  for (let o = from; o <= to; o++) {
    const v = publications.index.lookupPk(publicationPk(channel, o), s);
    // Always found while [oldest, offset] is intact; a row deleted by other means is skipped.
    if (v >= 0) items.push({ offset: o, time: time.read(v) as number, text: text.read(v) as string });
  }
  return { ...pos, items };
}

interface ChannelState {
  readonly name: string;
  /** Slot of the channel row at the latest commit, or -1 (a new channel). */
  readonly base: number;
  epoch: string;
  offset: number;
  oldest: number;
  changed: boolean;
}

/**
 * The history writes of one commit, computed under the commit lock at the latest commit: channel
 * states, new and deleted publication rows, and the plans that add them to the commit.
 */
export class HistoryWriter {
  readonly #channels: TableView;
  readonly #pubs: TableView;
  readonly #latest: number;
  readonly #now: number;
  readonly #epochSeed: string | undefined;
  #epochs = 0;
  readonly #states = new Map<string, ChannelState>();
  readonly #rows = new Map<string, Pending>();
  readonly outcome: HistoryOutcome = { publications: [], deleted: 0, more: false };

  /**
   * Under the lock; both indexes synced to the latest commit `latest`. With `epochSeed`, new
   * epochs derive from it instead of being random: every cluster node applying the same commit
   * record gives a channel the same epoch (storage/cluster-record.ts).
   */
  constructor(channels: TableView, publications: TableView, latest: number, now: number, epochSeed?: string) {
    this.#channels = channels;
    this.#pubs = publications;
    this.#latest = latest;
    this.#now = now;
    this.#epochSeed = epochSeed;
  }

  #newEpoch(channel: string): string {
    if (this.#epochSeed === undefined) return newEpoch();
    return createHash('sha256').update(`${this.#epochSeed}/${channel}/${this.#epochs++}`).digest('base64url').slice(0, 12);
  }

  #state(channel: string, create: boolean): ChannelState | undefined {
    let st = this.#states.get(channel);
    if (st) return st;
    const base = this.#channels.index.lookupPk(channel, this.#latest);
    if (base < 0) {
      if (!create) return undefined;
      st = { name: channel, base, epoch: this.#newEpoch(channel), offset: 0, oldest: 1, changed: true };
    } else {
      const pos = readPosition(this.#channels, channel, this.#latest)!;
      st = { name: channel, base, ...pos, changed: false };
    }
    this.#states.set(channel, st);
    return st;
  }

  /** Applies the transaction's operations in the order they were recorded, then trims. */
  apply(ops: readonly HistoryOp[]): void {
    // Per channel: its policy (the last one given) and the rows it added this commit.
    const added = new Map<string, { policy: HistoryPolicy; rows: number }>();
    for (const op of ops) {
      if (op.kind === 'reset') {
        const st = this.#state(op.channel, false);
        if (st) this.#reset(st);
        continue;
      }
      const st = this.#state(op.channel, true)!;
      const offset = ++st.offset;
      st.changed = true;
      const pk = publicationPk(op.channel, offset);
      // A live row under this pk exists only if the channel row was lost (repairHistory fixes
      // that at open): updating it keeps one live version per pk whatever happened.
      const base = this.#pubs.index.lookupPk(pk, this.#latest);
      this.#rows.set(pk, { row: { pk, channel: op.channel, offset, time: this.#now, text: op.text }, base });
      this.outcome.publications.push({ channel: op.channel, offset, epoch: st.epoch, time: this.#now });
      added.set(op.channel, { policy: op.policy, rows: (added.get(op.channel)?.rows ?? 0) + 1 });
    }
    // At most 2 deletions per row a channel added: a channel within its size before the commit is
    // within it after (whatever other channels trim), and a backlog drains at 1 row per row added.
    for (const [channel, { policy, rows }] of added) this.trim(this.#states.get(channel)!, policy, this.#now, 2 * rows);
  }

  /** Trims every channel the resolver has a policy for (a sweep), within `maxRows` deletions. */
  sweep(request: SweepRequest): void {
    const t = this.#channels.table;
    let budget = request.maxRows;
    for (let v = 0, rows = t.rowCount(); v < rows && !this.outcome.more; v++) {
      if (!t.isVisible(v, this.#latest)) continue;
      const name = t.readPk(v);
      const policy = request.policyOf(name);
      if (policy === null || policy === undefined) continue; // unknown channels are left as they are
      budget -= this.trim(this.#state(name, false)!, checkPolicy(name, policy), request.now, budget);
    }
  }

  /** Deletes the oldest rows of a channel beyond its policy at time `now`, at most `budget`; returns how many. */
  trim(st: ChannelState, policy: HistoryPolicy, now: number, budget: number): number {
    const cutoff = policy.maxAgeSeconds === undefined ? -Infinity : now - policy.maxAgeSeconds * 1000;
    let done = 0;
    while (st.oldest <= st.offset) {
      const tooMany = policy.size !== undefined && st.offset - st.oldest + 1 > policy.size;
      if (!tooMany && !(cutoff > -Infinity && this.#timeOf(st.name, st.oldest) < cutoff)) break;
      if (done >= budget) {
        this.outcome.more = true;
        break;
      }
      this.#delete(st.name, st.oldest);
      st.oldest++;
      st.changed = true;
      done++;
    }
    return done;
  }

  /** New epoch, every retained row deleted; offsets go on after the old top (never reused). */
  #reset(st: ChannelState): void {
    for (let o = st.oldest; o <= st.offset; o++) this.#delete(st.name, o);
    st.oldest = st.offset + 1;
    st.epoch = this.#newEpoch(st.name);
    st.changed = true;
  }

  #timeOf(channel: string, offset: number): number {
    const pk = publicationPk(channel, offset);
    const mine = this.#rows.get(pk);
    if (mine) return mine.row === null ? -Infinity : this.#now;
    const v = this.#pubs.index.lookupPk(pk, this.#latest);
    return v < 0 ? -Infinity : (this.#pubs.table.byName.get('time')!.read(v) as number);
  }

  #delete(channel: string, offset: number): void {
    const pk = publicationPk(channel, offset);
    const mine = this.#rows.get(pk);
    if (mine && mine.base < 0) {
      this.#rows.delete(pk); // published and trimmed in the same commit: never stored
      return;
    }
    const base = mine ? mine.base : this.#pubs.index.lookupPk(pk, this.#latest);
    if (base < 0) return; // already gone (deleted by other means)
    this.#rows.set(pk, { row: null, base });
    this.outcome.deleted++;
  }

  /** The commit's plans for the history tables (none when nothing changed). */
  plans(): TablePlan[] {
    const plans: TablePlan[] = [];
    const channelRows = new Map<string, Pending>();
    for (const st of this.#states.values()) {
      if (!st.changed) continue;
      const row: Row = { pk: st.name, epoch: st.epoch, offset: st.offset, oldest: st.oldest };
      channelRows.set(st.name, { row, base: st.base });
    }
    if (channelRows.size > 0) plans.push({ id: this.#channels.table.id, entries: [...channelRows], rows: channelRows });
    if (this.#rows.size > 0) plans.push({ id: this.#pubs.table.id, entries: [...this.#rows], rows: this.#rows });
    return plans;
  }
}

/** What {@link planHistoryRepair} found: channel rows to write, publication pks to delete. */
export interface HistoryRepair {
  readonly channels: Row[];
  readonly deletes: string[];
  /** Channels given a new epoch. */
  readonly renewed: string[];
  /** Channels the repair changes: a new epoch, or publication rows deleted. */
  readonly changed: string[];
}

/**
 * The repair of SharedStore.repairHistory, read at snapshot s (one pass over each table: it runs
 * once, at open). Invariant restored: a channel's publication rows are exactly the offsets
 * [oldest, offset] of its channel row; where they were not, history was lost: new epoch.
 */
export function planHistoryRepair(channels: TableView, publications: TableView, s: number, renewEpochs: boolean): HistoryRepair {
  const offsets = new Map<string, number[]>();
  const p = publications.table;
  const pChannel = p.byName.get('channel')!;
  const pOffset = p.byName.get('offset')!;
  for (let v = 0, rows = p.rowCount(); v < rows; v++) {
    if (!p.isVisible(v, s)) continue;
    const name = pChannel.read(v) as string;
    let list = offsets.get(name);
    if (!list) offsets.set(name, (list = []));
    list.push(pOffset.read(v) as number);
  }
  const known = new Map<string, ChannelPosition>();
  const c = channels.table;
  for (let v = 0, rows = c.rowCount(); v < rows; v++) {
    if (c.isVisible(v, s)) known.set(c.readPk(v), readPosition(channels, c.readPk(v), s)!);
  }
  const out: HistoryRepair = { channels: [], deletes: [], renewed: [], changed: [] };
  for (const name of new Set([...known.keys(), ...offsets.keys()])) {
    const list = (offsets.get(name) ?? []).sort((a, b) => a - b);
    const pos = known.get(name);
    let keepFrom: number;
    let next: ChannelPosition;
    const intact = pos !== undefined && list.filter((o) => o >= pos.oldest).length === pos.offset - pos.oldest + 1 && (list.length === 0 || list[list.length - 1]! <= pos.offset);
    if (intact && !renewEpochs) {
      keepFrom = pos.oldest;
      next = pos;
    } else {
      const top = Math.max(pos?.offset ?? 0, list[list.length - 1] ?? 0);
      // The contiguous run of rows ending at the top survives; nothing below a hole is served.
      let oldest = top + 1;
      for (let i = list.length - 1; i >= 0 && list[i] === oldest - 1; i--) oldest--;
      keepFrom = oldest;
      next = { epoch: newEpoch(), offset: top, oldest };
      out.renewed.push(name);
    }
    const deletes = out.deletes.length;
    for (const o of list) if (o < keepFrom) out.deletes.push(publicationPk(name, o));
    if (next !== pos) out.channels.push({ pk: name, epoch: next.epoch, offset: next.offset, oldest: next.oldest });
    if (next !== pos || out.deletes.length > deletes) out.changed.push(name);
  }
  return out;
}

/**
 * SharedStore.repairHistory's commit: plans the repair at `txn`'s snapshot (exclusive: nothing
 * else commits meanwhile), writes it and commits. Returns the channels given a new epoch; with
 * `dryRun`, commits nothing and returns every channel the repair would change (a new epoch, or
 * rows below `oldest` deleted).
 */
export function commitHistoryRepair(txn: Transaction, channels: TableView, publications: TableView, renewEpochs: boolean, dryRun = false): string[] {
  channels.index.sync();
  publications.index.sync();
  const repair = planHistoryRepair(channels, publications, txn.snapshot, renewEpochs);
  if (dryRun) return repair.changed;
  for (const row of repair.channels) txn.put(channels.table.id, row.pk, row);
  for (const pk of repair.deletes) txn.put(publications.table.id, pk, null);
  const result = txn.commit();
  if (!result.ok) throw new LexiconsError(ErrorCode.TXN, `repairHistory: ${result.message}`);
  return repair.renewed;
}
