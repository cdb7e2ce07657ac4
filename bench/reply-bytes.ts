/**
 * @module bench/reply-bytes
 * CPU per GetChatList-shaped reply in one process (issue #11): a 100-row `db.queryJson` top-k
 * (examples/chat's GetChatList query) sent with `ws.send` into a worker Recorder and packed into
 * the frame bytes the main thread gets (`Recorder.pack`), by two paths in alternating rounds:
 * - `string`: the path before src/json-pieces.ts, the reply serialized to a string (`jsonText`:
 *   the rows' bytes decoded and spliced) and encoded to UTF-8 again by `pack`;
 * - `pieces`: `ws.send` as it is now, the rows' bytes copied into the packed bytes as they are.
 * Reports the median (and min) process CPU per call (`process.cpuUsage`, user + system) of each
 * path: the whole call (query + reply + pack) and the reply + pack alone (rows queried before the
 * timed loop). Checks that both paths give the same bytes first.
 *
 *   node dist/bench/reply-bytes.js [--rows 100000] [--channels rows/100] [--limit 100] [--calls 2000] [--rounds 10]
 */
import { parseArgs } from 'node:util';
import { ChatMessage, User } from '../examples/chat/models.js';
import { jsonText } from '../src/json-text.js';
import { compileSchema } from '../src/storage/schema.js';
import { SharedStore } from '../src/storage/store.js';
import type { JsonRows } from '../src/storage/json-rows.js';
import { ChannelView } from '../src/workers/channel-view.js';
import { ConnectionHandle } from '../src/workers/handles.js';
import { Recorder } from '../src/workers/recorder.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    channels: { type: 'string' },
    limit: { type: 'string', default: '100' },
    calls: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '10' },
  },
});
const ROWS = Number(values.rows);
// As the read workload seeds them (bench/loadgen/workloads.ts): 100 messages per channel.
const CHANNELS = values.channels === undefined ? Math.max(1, Math.round(ROWS / 100)) : Number(values.channels);
const LIMIT = Number(values.limit);
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);

const AUTHOR = '6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e';
const store = SharedStore.create(compileSchema([User, ChatMessage]), { initialRows: ROWS + 16 });
store.runSync((db) => {
  db.create(User, { pk: AUTHOR, email: 'a@x', password: '0'.repeat(64) });
  for (let k = 0; k < ROWS; k++) {
    // As bench/loadgen/dataset.ts seeds them, every 7th with non-ASCII text.
    const content = k % 7 === 0 ? `seeded message ${k} — ünïcödé ✓` : `seeded message ${k}`;
    db.create(ChatMessage, { pk: `m${k}`, author: AUTHOR, channel: `c${k % CHANNELS}`, content, timestamp: 1_700_000_000 + k / 1000 });
  }
});

type Path = 'string' | 'pieces';

/** One reply: examples/chat GetChatList's `ws.send`, packed as a job of one call. */
function reply(path: Path, channel: string, rows: JsonRows): number {
  const recorder = new Recorder(new ChannelView([]));
  const ws = new ConnectionHandle({ id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] }, recorder);
  const payload = [{ GetChatList: { channel, messages: rows } }];
  if (path === 'pieces') ws.send(payload);
  else recorder.push({ kind: 'send', connectionId: 'c1', text: jsonText(payload)! });
  return recorder.pack([ws]).bytes.length;
}

const query = { _sort: '-timestamp', _limit: LIMIT } as const;
let sink = 0;

/** CPU µs per call of `calls` whole calls (query + reply + pack), in transactions of 100 calls. */
function wholeCalls(path: Path): number {
  const before = process.cpuUsage();
  for (let done = 0; done < CALLS; done += 100) {
    store.runSync((db) => {
      for (let i = 0; i < 100; i++) {
        const channel = `c${(done + i) % CHANNELS}`;
        sink += reply(path, channel, db.queryJson(ChatMessage, { channel, ...query }).reverse());
      }
    });
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / CALLS;
}

/** The rows of every channel, queried once (for the reply + pack alone). */
const queried = store.runSync((db) => Array.from({ length: CHANNELS }, (_, c) => db.queryJson(ChatMessage, { channel: `c${c}`, ...query }).reverse())).value;

function repliesOnly(path: Path): number {
  const before = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) sink += reply(path, `c${i % CHANNELS}`, queried[i % CHANNELS]!);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / CALLS;
}

function packedBytes(path: Path, rows: JsonRows): Buffer {
  const recorder = new Recorder(new ChannelView([]));
  const ws = new ConnectionHandle({ id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] }, recorder);
  const payload = [{ GetChatList: { channel: 'c0', messages: rows } }];
  if (path === 'pieces') ws.send(payload);
  else recorder.push({ kind: 'send', connectionId: 'c1', text: jsonText(payload)! });
  return Buffer.from(recorder.pack([ws]).bytes);
}
for (const rows of queried) if (!packedBytes('string', rows).equals(packedBytes('pieces', rows))) throw new Error('the two paths differ');

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fmt = (x: number): string => x.toFixed(2);

// Warm-up, then alternating rounds (the order flips every round).
for (const path of ['string', 'pieces'] as const) {
  wholeCalls(path);
  repliesOnly(path);
}
const whole: Record<Path, number[]> = { string: [], pieces: [] };
const only: Record<Path, number[]> = { string: [], pieces: [] };
for (let r = 0; r < ROUNDS; r++) {
  const order: Path[] = r % 2 === 0 ? ['string', 'pieces'] : ['pieces', 'string'];
  for (const path of order) whole[path].push(wholeCalls(path));
  for (const path of order) only[path].push(repliesOnly(path));
}
const frameBytes = packedBytes('pieces', queried[0]!).length;
console.log(`${ROWS} rows, ${LIMIT}-row replies of ${frameBytes} bytes, ${CALLS} calls x ${ROUNDS} rounds (process CPU µs per call, median / min):`);
for (const [name, m] of [['query + reply + pack', whole], ['reply + pack', only]] as const) {
  const s = median(m.string);
  const p = median(m.pieces);
  console.log(`  ${name}: string ${fmt(s)} / ${fmt(Math.min(...m.string))}, pieces ${fmt(p)} / ${fmt(Math.min(...m.pieces))}  (${fmt(p - s)} µs, ${((p / s - 1) * 100).toFixed(0)}%)`);
}
if (sink === 0) console.log('');
