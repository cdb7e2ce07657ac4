/**
 * @module bench/loadgen/load-process
 * The engine of one generator process: opens its share of connections, drives calls in closed
 * loop (a window in flight per sender) or open loop (a paced rate), counts and times what comes
 * back, drains, and reports. Commands arrive from the driver through child.ts.
 *
 * Hot path: one timestamp per TCP chunk; frames are recognised by byte prefixes and the
 * timestamp read by a byte scan (no JSON.parse); replies to a chunk are appended to the
 * connection's slab and flushed in one write.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Histogram } from './histogram.js';
import type { Job, TotalFigures, WindowFigures } from './job.js';
import { FRAME, protocolByName, scanEnd, scanNumber, startsWith, type Protocol } from './protocols.js';
import { callAndWait, openClient, registerUsers, runStorm } from './storm.js';
import { nowUs, type RawWsConnection } from './ws-client.js';
import { FrameTemplate, encodeFrame } from './ws-frame.js';

const T_NUMBER = Buffer.from('"t":');
const T_STRING = Buffer.from('~t');
const C_STRING = Buffer.from('~c');
/** Global connection ids: procIndex * ID_STRIDE + local index. */
export const ID_STRIDE = 1_000_000;

interface Client {
  conn: RawWsConnection;
  id: number;
  sender: boolean;
  inflight: number;
  seq: number;
  /** Chat: copies received (any sender). */
  received: number;
  /** Request mode: send times, a ring of `window` entries. */
  fifo: Float64Array;
  head: number;
  tail: number;
}

export class LoadProcess {
  readonly job: Job;
  readonly protocol: Protocol;
  readonly clients: Client[] = [];
  readonly senders: Client[] = [];
  readonly latency = new Histogram();
  readonly delivery = new Histogram();
  readonly totals: TotalFigures = { sent: 0, completed: 0, delivered: 0, errors: 0, other: 0, dropped: 0, drained: true, errorSamples: [] };
  running = false;
  measuring = false;
  stopping = false;
  #template: FrameTemplate;
  #responsePrefix: Buffer;
  #chunkNow = 0;
  #markAt = 0;
  #mark = { sent: 0, completed: 0, delivered: 0, errors: 0, skipped: 0 };
  #cpuMark: NodeJS.CpuUsage = { user: 0, system: 0 };
  /** This process's event-loop delay over the window: a delivery it reads late is late by this much. */
  #loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  #skipped = 0;
  #pacer: NodeJS.Timeout | null = null;
  #goAt = 0;
  #paced = 0;
  #rr = 0;
  #waiter: { check: () => boolean; resolve: (ok: boolean) => void; timer: NodeJS.Timeout } | null = null;
  #storm: Promise<void> | null = null;

  constructor(job: Job) {
    this.job = job;
    this.protocol = protocolByName(job.protocol);
    const pad = 'x'.repeat(job.padding);
    const p = this.protocol;
    switch (job.mode) {
      case 'chat':
        this.#template = new FrameTemplate(p.call('CreateChatMessage', `{"channel":${JSON.stringify(job.channel)},"content":"~t{t:15z}~c{c:8z}~${pad}"}`));
        this.#responsePrefix = p.responsePrefix('CreateChatMessage');
        break;
      case 'request': {
        const r = job.request!;
        this.#template = new FrameTemplate(p.call(r.signal, r.args));
        this.#responsePrefix = p.responsePrefix(r.signal);
        break;
      }
      default: // echo; connect probes with Echo too
        this.#template = new FrameTemplate(p.call('Echo', `{"t":{t:15},"i":{i:10}${pad === '' ? '' : `,"p":"${pad}"`}}`));
        this.#responsePrefix = p.responsePrefix('Echo');
    }
  }

  /** Register this process's users, then open and ready its connections. */
  async setup(): Promise<{ connected: number; registered: number }> {
    const job = this.job;
    const registered = await registerUsers(job, this.protocol);
    if (job.mode === 'connect') return { connected: 0, registered };
    const subscribe = encodeFrame(this.protocol.call('Subscribe', JSON.stringify({ channel: job.channel })));
    const subscribed = this.protocol.responsePrefix('Subscribe');
    let next = 0;
    const opener = async () => {
      while (next < job.conns) {
        const k = next++;
        const id = job.procIndex * ID_STRIDE + k;
        const conn = await openClient(job, this.protocol, id, undefined);
        // Chat: join the channel first (examples/chat refuses posts from non-subscribers).
        if (job.mode === 'chat') await callAndWait(conn, this.protocol, subscribe, subscribed, job.timeoutMs);
        this.#attach(conn, id, k < job.senders);
      }
    };
    await Promise.all(Array.from({ length: Math.min(job.setupConcurrency, job.conns) }, opener));
    // Keep the client order stable (by id) whatever order the openers finished in.
    this.clients.sort((a, b) => a.id - b.id);
    this.senders.sort((a, b) => a.id - b.id);
    return { connected: this.clients.length, registered };
  }

  #attach(conn: RawWsConnection, id: number, sender: boolean): void {
    const client: Client = { conn, id, sender, inflight: 0, seq: 0, received: 0, fifo: new Float64Array(Math.max(1, this.job.window)), head: 0, tail: 0 };
    this.clients.push(client);
    if (sender) this.senders.push(client);
    conn.onChunk = () => {
      this.#chunkNow = nowUs();
    };
    const mode = this.job.mode;
    conn.onMessage =
      mode === 'chat' ? (buf, start, end) => this.#onChat(client, buf, start, end)
      : mode === 'request' ? (buf, start, end) => this.#onResponse(client, buf, start, end)
      : (buf, start, end) => this.#onEcho(client, buf, start, end);
    conn.onChunkDone = () => this.#afterChunk(client);
    conn.onClose = (error) => {
      if (this.stopping) return;
      this.totals.dropped++;
      this.#sample(`connection ${id} closed (code ${conn.closeCode})${error ? `: ${error.message}` : ''}`);
    };
  }

  #onEcho(client: Client, buf: Buffer, start: number, end: number): void {
    const kind = this.protocol.classify(client.conn, buf, start, end);
    if (kind === FRAME.APP) {
      const t = scanNumber(buf, start, end, T_NUMBER);
      if (t < 0) {
        this.totals.other++;
        return;
      }
      client.inflight--;
      this.totals.completed++;
      if (this.measuring) this.latency.record(this.#chunkNow - t);
    } else if (kind === FRAME.ERROR) {
      this.#error(client, buf, start, end);
    }
  }

  #onChat(client: Client, buf: Buffer, start: number, end: number): void {
    const kind = this.protocol.classify(client.conn, buf, start, end);
    if (kind === FRAME.APP) {
      const t = scanNumber(buf, start, end, T_STRING);
      if (t < 0) {
        this.totals.other++;
        return;
      }
      const from = scanNumber(buf, scanEnd, end, C_STRING);
      client.received++;
      this.totals.delivered++;
      const latency = this.#chunkNow - t;
      if (this.measuring) this.delivery.record(latency);
      if (from === client.id) {
        client.inflight--;
        this.totals.completed++;
        if (this.measuring) this.latency.record(latency);
      }
    } else if (kind === FRAME.ERROR) {
      this.#error(client, buf, start, end);
    }
  }

  #onResponse(client: Client, buf: Buffer, start: number, end: number): void {
    const kind = this.protocol.classify(client.conn, buf, start, end);
    if (kind === FRAME.APP && startsWith(buf, start, end, this.#responsePrefix)) {
      this.#complete(client);
    } else if (kind === FRAME.ERROR) {
      this.#error(client, buf, start, end);
    } else if (kind === FRAME.APP) {
      this.totals.other++;
    }
  }

  /** Request mode: a reply completes the oldest call of its connection. */
  #complete(client: Client): void {
    if (client.inflight <= 0) {
      this.totals.other++;
      return;
    }
    const sentAt = this.#pop(client);
    this.totals.completed++;
    if (this.measuring) this.latency.record(this.#chunkNow - sentAt);
  }

  /** Take the oldest call in flight off a connection; returns its send time (request mode). */
  #pop(client: Client): number {
    client.inflight--;
    if (this.job.mode !== 'request') return 0;
    const sentAt = client.fifo[client.head]!;
    client.head = (client.head + 1) % client.fifo.length;
    return sentAt;
  }

  /** An error reply ends one call of its connection (it counts as an error, not a completion). */
  #error(client: Client, buf: Buffer, start: number, end: number): void {
    this.totals.errors++;
    this.#sample(buf.toString('utf8', start, Math.min(end, start + 300)));
    if (client.inflight > 0) this.#pop(client);
  }

  #sample(text: string): void {
    if (this.totals.errorSamples.length < 5) this.totals.errorSamples.push(text);
  }

  #afterChunk(client: Client): void {
    if (this.running && this.job.rate === 0 && client.sender) {
      const window = this.job.window;
      if (client.inflight < window) {
        const now = nowUs();
        while (client.inflight < window) this.#send(client, now);
      }
    }
    client.conn.flush();
    if (this.#waiter !== null && this.#waiter.check()) this.#settle(true);
  }

  #send(client: Client, now: number): void {
    const tpl = this.#template;
    const [buf, at] = client.conn.reserve(tpl.length);
    tpl.write(buf, at);
    switch (this.job.mode) {
      case 'chat':
        tpl.set(buf, at, 0, now);
        tpl.set(buf, at, 1, client.id);
        break;
      case 'request':
        tpl.set(buf, at, 0, Math.floor(Math.random() * this.job.request!.keys));
        client.fifo[client.tail] = now;
        client.tail = (client.tail + 1) % client.fifo.length;
        break;
      default:
        tpl.set(buf, at, 0, now);
        tpl.set(buf, at, 1, client.seq);
    }
    client.inflight++;
    client.seq++;
    this.totals.sent++;
  }

  go(): void {
    this.running = true;
    if (this.job.mode === 'connect') {
      this.#storm = runStorm(this);
      return;
    }
    if (this.job.rate === 0) {
      const now = nowUs();
      for (const c of this.senders) {
        while (c.inflight < this.job.window) this.#send(c, now);
        c.conn.flush();
      }
      return;
    }
    this.#goAt = nowUs();
    this.#paced = 0;
    this.#pacer = setInterval(() => this.#tick(), 1);
  }

  /** Open loop: send whatever the rate says is due since `go`, round robin over senders. */
  #tick(): void {
    if (!this.running || this.senders.length === 0) return;
    const now = nowUs();
    const due = Math.floor(((now - this.#goAt) * this.job.rate) / 1e6) - this.#paced;
    const n = this.senders.length;
    const cap = this.job.window;
    for (let k = 0; k < due; k++) {
      const c = this.senders[this.#rr++ % n]!;
      if (c.inflight >= cap) this.#skipped++;
      else this.#send(c, now);
    }
    this.#paced += Math.max(0, due);
    for (const c of this.senders) c.conn.flush();
  }

  /** Storm mode records completions itself. */
  recordHandshake(us: number): void {
    this.totals.completed++;
    if (this.measuring) this.latency.record(us);
  }

  recordAttempt(): void {
    this.totals.sent++;
  }

  recordFailure(message: string): void {
    this.totals.errors++;
    this.#sample(message);
  }

  mark(): void {
    this.latency.reset();
    this.delivery.reset();
    const t = this.totals;
    this.#mark = { sent: t.sent, completed: t.completed, delivered: t.delivered, errors: t.errors, skipped: this.#skipped };
    this.#cpuMark = process.cpuUsage();
    this.#loopDelay.reset();
    this.#loopDelay.enable();
    this.#markAt = nowUs();
    this.measuring = true;
  }

  /** End the window, stop sending, wait for in-flight calls (bounded), report the window. */
  async stop(): Promise<{ window: WindowFigures; sent: number }> {
    const seconds = (nowUs() - this.#markAt) / 1e6;
    const cpu = process.cpuUsage(this.#cpuMark);
    this.#loopDelay.disable();
    this.measuring = false;
    this.running = false;
    if (this.#pacer !== null) clearInterval(this.#pacer);
    const t = this.totals;
    const m = this.#mark;
    const window: WindowFigures = {
      seconds,
      sent: t.sent - m.sent,
      completed: t.completed - m.completed,
      delivered: t.delivered - m.delivered,
      errors: t.errors - m.errors,
      latency: this.latency.toJSON(),
      delivery: this.delivery.toJSON(),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      skipped: this.#skipped - m.skipped,
      loopDelayMs: { p50: this.#loopDelay.percentile(50) / 1e6, p99: this.#loopDelay.percentile(99) / 1e6, max: this.#loopDelay.max / 1e6 },
    };
    if (this.#storm !== null) await this.#storm;
    else if (!(await this.#wait(() => this.senders.every((c) => c.inflight <= 0 || c.conn.closed)))) t.drained = false;
    return { window, sent: t.sent };
  }

  /** Chat: wait until every connection got `expectedPerConn` copies (bounded), then report totals. */
  async collect(expectedPerConn: number): Promise<TotalFigures> {
    if (this.job.mode === 'chat') {
      const ok = await this.#wait(() => this.clients.every((c) => c.received >= expectedPerConn || c.conn.closed));
      if (!ok) this.totals.drained = false;
    }
    return this.totals;
  }

  /** Resolve true once `check` holds (tested after every chunk), false after the timeout. */
  #wait(check: () => boolean): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#settle(false), this.job.timeoutMs);
      this.#waiter = { check, resolve, timer };
    });
  }

  #settle(ok: boolean): void {
    const w = this.#waiter;
    if (w === null) return;
    this.#waiter = null;
    clearTimeout(w.timer);
    w.resolve(ok);
  }

  /** Close every connection and wait for the sockets to go (bounded). */
  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.clients.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.conn.closed) return resolve();
            const timer = setTimeout(() => {
              c.conn.destroy();
              resolve();
            }, 1000);
            c.conn.socket.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            c.conn.close(1000);
          }),
      ),
    );
  }
}
