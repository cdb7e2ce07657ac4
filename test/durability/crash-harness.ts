/**
 * The crash-test harness: a server started through the CLI, writers that record when each write
 * was acknowledged, a SIGKILL at a chosen moment, and the checks of the data after the restart.
 * Every wait is on an event (a log line: CliServer.waitForOutput, a response, an exit), bounded
 * in time; the only timers are the random kill delays after such an event.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { digestOf, payloadOf } from '../fixtures/apps/durability-app.js';
import { prng } from '../helpers/prng.js';
export { prng };

export interface WriteRecord {
  readonly key: string;
  readonly cycle: number;
  /** Date.now() when the acknowledgement arrived, or null (unknown outcome). */
  ackAt: number | null;
  /** The server refused it (an Errors reply). */
  refused: string | null;
}

/**
 * Writers: `clients` connections, each keeping `depth` Puts in flight, every Put with a fresh
 * unique key. `firstAck` resolves at the first acknowledgement of this run.
 */
export class Writers {
  readonly sockets: WebSocket[] = [];
  readonly #writes: Map<string, WriteRecord>;
  readonly #cycle: number;
  #stopped = false;
  #resolveFirst!: () => void;
  readonly firstAck: Promise<void>;
  acked = 0;

  constructor(writes: Map<string, WriteRecord>, cycle: number) {
    this.#writes = writes;
    this.#cycle = cycle;
    this.firstAck = new Promise((resolve) => (this.#resolveFirst = resolve));
  }

  async start(url: string, clients: number, depth: number): Promise<void> {
    const opened: Array<Promise<void>> = [];
    for (let c = 0; c < clients; c++) {
      const ws = new WebSocket(url);
      this.sockets.push(ws);
      const client = `c${this.#cycle}x${c}`;
      let seq = 0;
      const pending: string[] = [];
      const sendOne = () => {
        if (this.#stopped || ws.readyState !== WebSocket.OPEN) return;
        const key = `${client}:${seq}`;
        this.#writes.set(key, { key, cycle: this.#cycle, ackAt: null, refused: null });
        pending.push(key);
        ws.send(JSON.stringify({ Put: { key, client, seq: seq++ } }));
      };
      ws.on('message', (data) => {
        const now = Date.now();
        for (const item of JSON.parse(data.toString()) as Array<Record<string, unknown>>) {
          const key = pending.shift();
          if (key === undefined) throw new Error(`a reply without a call: ${data.toString()}`);
          const record = this.#writes.get(key)!;
          if ('Put' in item) {
            if ((item.Put as { key: string }).key !== key) throw new Error(`reply for ${(item.Put as { key: string }).key}, expected ${key}`);
            record.ackAt = now;
            this.acked++;
            this.#resolveFirst();
          } else {
            record.refused = JSON.stringify(item);
          }
          sendOne();
        }
      });
      ws.on('error', () => undefined); // the kill resets the connection: expected
      opened.push(
        new Promise((resolve, reject) => {
          ws.once('open', () => {
            for (let i = 0; i < depth; i++) sendOne();
            resolve();
          });
          ws.once('error', reject);
        }),
      );
    }
    await Promise.all(opened);
  }

  stop(): void {
    this.#stopped = true;
    for (const ws of this.sockets) ws.terminate();
  }
}

export interface Dumped {
  entries: Array<[string, string, number, string]>;
  receipts: Array<[string, string]>;
}

/** Every row of the fixture app, read through the server after a restart. */
export function dump(url: string, timeoutMs = 15_000): Promise<Dumped> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 256 << 20 });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no Dump reply within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('open', () => ws.send(JSON.stringify({ Dump: {} })));
    ws.once('message', (data) => {
      clearTimeout(timer);
      ws.close();
      const [item] = JSON.parse(data.toString()) as [{ Dump?: Dumped }];
      if (!item?.Dump) reject(new Error(`unexpected reply to Dump: ${data.toString().slice(0, 500)}`));
      else resolve(item.Dump);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface Verdict {
  /** Problems that make the data corrupt (always a failure). */
  readonly corrupt: string[];
  /** Acknowledged writes missing, with how long before the kill they were acknowledged (ms). */
  readonly missing: Array<{ key: string; cycle: number; msBeforeKill: number }>;
  readonly rows: number;
  readonly ackedChecked: number;
}

/**
 * Checks the dumped rows against every write ever sent: no duplicate key, every row well-formed
 * (payload and digest derived from its key, client and seq from its key), every Entry has its
 * Receipt and vice versa, no key that was never sent, nothing refused is present; and lists the
 * acknowledged writes that are missing. `killedAt[cycle]` is the kill time of each run.
 */
export function verify(d: Dumped, writes: ReadonlyMap<string, WriteRecord>, killedAt: ReadonlyMap<number, number>): Verdict {
  const corrupt: string[] = [];
  const entries = new Set<string>();
  for (const row of d.entries) {
    const [key, client, seq, payload] = row;
    if (entries.has(key)) corrupt.push(`duplicate Entry key ${key}`);
    entries.add(key);
    if (typeof key !== 'string' || `${client}:${seq}` !== key || payload !== payloadOf(key)) corrupt.push(`malformed Entry ${JSON.stringify(row)}`);
    const w = writes.get(key);
    if (!w) corrupt.push(`Entry ${key} was never written`);
    else if (w.refused) corrupt.push(`Entry ${key} is present although its write was refused (${w.refused})`);
  }
  const receipts = new Set<string>();
  for (const row of d.receipts) {
    const [key, digest] = row;
    if (receipts.has(key)) corrupt.push(`duplicate Receipt key ${key}`);
    receipts.add(key);
    if (digest !== digestOf(payloadOf(key))) corrupt.push(`malformed Receipt ${JSON.stringify(row)}`);
    if (!entries.has(key)) corrupt.push(`Receipt ${key} without its Entry (a torn transaction or mixed snapshot)`);
  }
  for (const key of entries) if (!receipts.has(key)) corrupt.push(`Entry ${key} without its Receipt (a torn transaction or mixed snapshot)`);
  const missing: Verdict['missing'] = [];
  let ackedChecked = 0;
  for (const w of writes.values()) {
    if (w.ackAt === null) continue;
    ackedChecked++;
    if (!entries.has(w.key)) missing.push({ key: w.key, cycle: w.cycle, msBeforeKill: (killedAt.get(w.cycle) ?? Number.NaN) - w.ackAt });
  }
  return { corrupt: corrupt.slice(0, 20), missing, rows: entries.size, ackedChecked };
}

/** What a kill left in the folder: a snapshot caught between writing and installing its tables. */
export async function snapshotLeftovers(dir: string): Promise<{ nextFiles: number; intent: boolean; segments: number }> {
  const names = await readdir(dir);
  let intent = false;
  if (names.includes('snapshot.json')) intent = 'install' in (JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as object);
  return { nextFiles: names.filter((n) => n.endsWith('.csv.next')).length, intent, segments: names.filter((n) => /^wal-\d+\.log$/.test(n)).length };
}
