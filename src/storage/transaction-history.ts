/**
 * @module storage/transaction-history
 * The channel-history side of a transaction (transaction.ts): the publications and resets it
 * recorded, in call order, a requested trim sweep, the reads of a channel's history at the
 * snapshot, and, at commit under the lock, the history rows those operations write (history.ts).
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { ChannelPosition, HistoryPage, HistoryQuery } from './api.js';
import type { Engine } from './engine.js';
import { historyDisabled } from './history-tables.js';
import { checkPolicy, HistoryWriter, readHistory, readPosition, type HistoryOp, type HistoryOutcome, type HistoryTableIds, type SweepRequest, type TableView } from './history.js';
import type { TableIndex } from './indexes.js';
import type { TablePlan } from './write-set.js';

export class TxnHistory {
  /** Publications and resets, in call order; applied at commit under the lock. */
  readonly ops: HistoryOp[] = [];
  sweep: SweepRequest | undefined;
  readonly #engine: Engine;
  /** The transaction's index of a table, caught up to its snapshot. */
  readonly #index: (id: number) => TableIndex;

  constructor(engine: Engine, index: (id: number) => TableIndex) {
    this.#engine = engine;
    this.#index = index;
  }

  ids(what: string): HistoryTableIds {
    const ids = this.#engine.history;
    if (!ids) throw historyDisabled(what);
    return ids;
  }

  #view(id: number): TableView {
    return { table: this.#engine.tables[id]!, index: this.#index(id) };
  }

  /** Records a publication; false when the channel keeps no history (nothing recorded). */
  publish(channel: string, text: string): boolean {
    this.ids('publish');
    if (typeof channel !== 'string' || channel === '') throw new LexiconsError(ErrorCode.TYPE, 'publish: channel must be a non-empty string');
    if (typeof text !== 'string') throw new LexiconsError(ErrorCode.TYPE, `publish: text must be a string, got ${typeof text}`);
    const policy = this.#engine.historyPolicy?.(channel);
    if (policy === null || policy === undefined) return false;
    this.ops.push({ kind: 'publish', channel, text, policy: checkPolicy(channel, policy) });
    return true;
  }

  reset(channel: string): void {
    this.ids('resetHistory');
    if (typeof channel !== 'string' || channel === '') throw new LexiconsError(ErrorCode.TYPE, 'resetHistory: channel must be a non-empty string');
    this.ops.push({ kind: 'reset', channel });
  }

  requestSweep(request: SweepRequest): void {
    this.ids('trimHistory');
    this.sweep = request;
  }

  read(channel: string, snapshot: number, query?: HistoryQuery): HistoryPage | null {
    const ids = this.ids('history');
    return readHistory(this.#view(ids.channel), this.#view(ids.publication), channel, snapshot, query);
  }

  position(channel: string, snapshot: number): ChannelPosition | null {
    return readPosition(this.#view(this.ids('channelPosition').channel), channel, snapshot);
  }

  /**
   * Under the lock, after validation: the history rows of this commit (offsets, channel rows,
   * trimmed rows), read and written at the latest commit with no read-set entry (history.ts).
   */
  sequence(plan: readonly TablePlan[], clock: { now: number; epochSeed: string } | undefined): { plans: TablePlan[]; outcome: HistoryOutcome } {
    const engine = this.#engine;
    const ids = this.ids('commit');
    if (plan.some((p) => p.id === ids.channel || p.id === ids.publication)) {
      throw new LexiconsError(ErrorCode.TXN, 'a transaction cannot both write the history tables directly and publish');
    }
    const view = (id: number): TableView => {
      const index = engine.index(id);
      index.sync();
      return { table: engine.tables[id]!, index };
    };
    const writer = new HistoryWriter(view(ids.channel), view(ids.publication), engine.control.commitId(), clock?.now ?? Date.now(), clock?.epochSeed);
    writer.apply(this.ops);
    if (this.sweep) writer.sweep(this.sweep);
    return { plans: writer.plans(), outcome: writer.outcome };
  }
}
