/**
 * @module bench/versions
 * A hot row updated many times while the server's reclaimer runs (storage/reclaim.ts): memory must
 * stay flat. Worker threads update one row of a shared store (one transaction per update, as a
 * Signal call does) while the main thread runs `startReclaimer` as the runtime does, sampling RSS
 * and the table's shared bytes. With `--reclaim off` the same run shows the growth without it.
 *
 * Usage: node dist/bench/versions.js [--updates N] [--workers W] [--reclaim on|off]
 *        (defaults: 1000000, 2, on; the figure is --updates 10000000)
 * Prints JSON: updates/s, compactions, RSS (MiB) at 10% of the run and at the end, the largest
 * table size seen, and the versions left.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { startReclaimer } from '../src/storage/reclaim.js';
import { compileSchema, field, Model } from '../src/storage/schema.js';
import { SharedStore, type StoreHandles } from '../src/storage/store.js';

class Counter extends Model {
  static name_ = field.str({ unique: true });
  static value = field.int();
  static note = field.str();
}

const schema = () => compileSchema([Counter]);

if (!isMainThread) {
  const { handles, updates } = workerData as { handles: StoreHandles; updates: number };
  const store = SharedStore.attach(schema(), handles);
  for (let i = 0; i < updates; i++) {
    store.runSync((db) => {
      const row = db.get(Counter, 'hot')!;
      db.update(Counter, 'hot', { value: row.value + 1, note: `update ${i}` });
    });
  }
  parentPort!.postMessage('done');
} else {
  const { values } = parseArgs({ options: { updates: { type: 'string', default: '1000000' }, workers: { type: 'string', default: '2' }, reclaim: { type: 'string', default: 'on' } } });
  const updates = Number(values.updates);
  const workers = Number(values.workers);
  if (!Number.isInteger(updates) || updates < 1000) throw new Error(`--updates must be an integer >= 1000, got ${JSON.stringify(values.updates)}`);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive integer, got ${JSON.stringify(values.workers)}`);
  if (values.reclaim !== 'on' && values.reclaim !== 'off') throw new Error(`--reclaim must be on or off, got ${JSON.stringify(values.reclaim)}`);

  const store = SharedStore.create(schema(), { maxBytesPerBuffer: 1 << 30 });
  store.bulkLoad(Counter, [{ pk: 'hot', name_: 'hot', value: 0, note: '' }]);
  const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
  let compactions = 0;
  let freed = 0;
  const reclaimer = values.reclaim === 'on' ? startReclaimer(store, { onReclaim: (f) => ((compactions += 1), (freed += f.Counter ?? 0)) }) : undefined;
  const rssAt: Record<string, number> = {};
  let maxTableBytes = 0;
  let maxRss = 0;
  const sampler = setInterval(() => {
    const done = store.runSync((db) => db.get(Counter, 'hot')!.value).value;
    const rss = process.memoryUsage().rss;
    maxRss = Math.max(maxRss, rss);
    maxTableBytes = Math.max(maxTableBytes, store.stats().tables.Counter!.bytes);
    if (rssAt.tenPercent === undefined && done >= updates / 10) rssAt.tenPercent = mib(rss);
  }, 100);
  const t0 = performance.now();
  const per = Math.ceil(updates / workers);
  await Promise.all(
    Array.from({ length: workers }, () => {
      const w = new Worker(new URL(import.meta.url), { workerData: { handles: store.handles, updates: per } });
      return new Promise<void>((resolve, reject) => {
        w.once('message', () => resolve());
        w.once('error', reject);
      }).finally(() => w.terminate());
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  reclaimer?.stop();
  const { versions, bytes } = store.stats().tables.Counter!;
  process.stdout.write(
    `${JSON.stringify(
      {
        updates: per * workers,
        workers,
        reclaim: values.reclaim,
        seconds: Math.round(seconds * 10) / 10,
        updatesPerSecond: Math.round((per * workers) / seconds),
        compactions,
        versionsFreed: freed,
        versionsLeft: versions,
        tableMiB: mib(bytes),
        maxTableMiB: mib(maxTableBytes),
        rssMiBAtTenPercent: rssAt.tenPercent ?? null,
        rssMiBAtEnd: mib(process.memoryUsage().rss),
        maxRssMiB: mib(maxRss),
      },
      null,
      2,
    )}\n`,
  );
}
