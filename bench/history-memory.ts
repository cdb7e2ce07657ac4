/**
 * @module bench/history-memory
 * Quick and deterministic: the shared memory channel history takes per 1,000 items of 100 bytes.
 * Publishes N items (one per commit, through Txn.publish, as a Signal's response to a history
 * channel does) into a store with the history tables, and reports the store's own stats
 * (bytes allocated for `lexicons_publication` + `lexicons_channel`): all N retained, and trimmed
 * to the last 1,000 (what trimmed publications leave behind until a restart or compaction).
 * No GC or RSS figures (bench/storage.ts measures those in child processes).
 *
 * Usage: node dist/bench/history-memory.js [--items N]   (default 10000)
 */
import { parseArgs } from 'node:util';
import { publishHistory } from './storage.js';

const { values } = parseArgs({ options: { items: { type: 'string', default: '10000' } } });
const items = Number(values.items);
if (!Number.isInteger(items) || items < 1000) throw new Error(`--items must be an integer >= 1000, got ${JSON.stringify(values.items)}`);

const t0 = performance.now();
const kept = publishHistory(items, false).shared;
const trimmed = publishHistory(items, true).shared;
const per1000 = (bytes: number) => Math.round((bytes / items) * 1000);
process.stdout.write(
  `${JSON.stringify(
    {
      items,
      itemBytes: 100,
      retainedSharedBytesPer1000: per1000(kept),
      trimmedTo1000SharedBytesPer1000Published: per1000(trimmed),
      ms: Math.round(performance.now() - t0),
    },
    null,
    2,
  )}\n`,
);
