/**
 * @module bench/app/live
 * The app bench/live.ts runs: `Cell` rows in buckets (an indexed field), a Signal that writes one
 * row (its label carries the write's send time, for commit-to-change latency) or fills a bucket,
 * and the same query three ways: the incremental rows form (`Bucket`), the top-k form
 * (`BucketTop`), and a general body that is re-run on every change (`BucketRerun`).
 */
import { LiveQuery, LiveQueryManager, Model, ModelManager, Server, Signal, SignalManager, field, live, type LiveContext, type SignalContext } from '../../src/index.js';

export class Cell extends Model {
  static bucket = field.str({ index: true });
  static value = field.int();
  static label = field.str({ default: '' });
}

/** Writes one row (`pk` in `bucket`); `label` is what the subscribers see change. */
export class Touch extends Signal {
  static override args = { pk: field.str(), bucket: field.str(), value: field.int(), label: field.str() };
  execute({ pk, bucket, value, label, db }: SignalContext<typeof Touch>) {
    if (db.get(Cell, pk) === null) db.create(Cell, { pk, bucket, value, label });
    else db.update(Cell, pk, { value, label });
  }
}

/** `count` rows in each of `buckets` buckets `b<from>`.. (a start-up fill). */
export class Fill extends Signal {
  static override args = { from: field.int(), buckets: field.int(), count: field.int() };
  execute({ from, buckets, count, db }: SignalContext<typeof Fill>) {
    for (let b = from; b < from + buckets; b++) for (let i = 0; i < count; i++) db.create(Cell, { pk: `b${b}-${i}`, bucket: `b${b}`, value: i });
  }
}

export class Bucket extends LiveQuery {
  static override args = { bucket: field.str() };
  query({ bucket }: LiveContext<typeof Bucket>) {
    return live.rows(Cell, { bucket });
  }
}

export class BucketTop extends LiveQuery {
  static override args = { bucket: field.str() };
  query({ bucket }: LiveContext<typeof BucketTop>) {
    return live.rows(Cell, { bucket }, { orderBy: '-value', limit: 5 });
  }
}

export class BucketRerun extends LiveQuery {
  static override args = { bucket: field.str() };
  query({ bucket, db }: LiveContext<typeof BucketRerun>) {
    return db.query(Cell, { bucket }).filter(() => true);
  }
}

export const server = new Server({
  models: new ModelManager(Cell),
  signals: new SignalManager({ Touch, Fill }),
  live: new LiveQueryManager({ Bucket, BucketTop, BucketRerun }),
  limits: { messagesPerSecond: 1_000_000, maxBackpressureBytes: 64 << 20 },
  durability: { fsync: 'no' },
});

server.runIfMain(import.meta.url);
