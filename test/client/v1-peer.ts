/**
 * PROTOCOL STAND-IN, NOT LEXICONS. A tiny WebSocket peer (the `ws` package's WebSocketServer on
 * 127.0.0.1, port 0) that speaks the `lexicons.v1` frames, for what the real server never does:
 * answering a connection's calls out of call order, and sending every outcome frame twice. The
 * client's other scenarios run against lexicons itself (test/client/server-*.test.ts).
 *
 * What it does: selects `lexicons.v1` when offered; takes the first frame as `$connect` and
 * answers `[{"$connected": {"id": ...}}]`; answers each call with `$id` with one frame: its tagged
 * items, an error item with a code, or `$ok`.
 */
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** What a stand-in Signal answers: items for its caller, an error, or `$ok`. */
export type Outcome = { items: Record<string, unknown>[] } | { error: { code: string; message: string } } | 'ok';

export interface PeerOptions {
  /** Stand-in Signals; unknown names get UNKNOWN_SIGNAL. */
  signals?: Record<string, (args: Record<string, unknown>) => Outcome | Promise<Outcome>>;
  /** Run calls of one connection one after the other (as lexicons does), or all at once. Default true. */
  ordered?: boolean;
  /** Send every outcome frame twice (a client must settle once and ignore the copy). */
  duplicate?: boolean;
}

export class V1Peer {
  readonly #wss: WebSocketServer;
  readonly #options: PeerOptions;
  readonly connections: WebSocket[] = [];
  /** Text frames received after `$connect`, per connection number (1-based). */
  readonly frames = new Map<number, number>();
  port = 0;

  private constructor(wss: WebSocketServer, options: PeerOptions) {
    this.#wss = wss;
    this.#options = options;
    wss.on('connection', (socket) => this.#accept(socket));
  }

  static async start(options: PeerOptions = {}): Promise<V1Peer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => (protocols.has('lexicons.v1') ? 'lexicons.v1' : false) });
    const peer = new V1Peer(wss, options);
    await once(wss, 'listening');
    peer.port = (wss.address() as AddressInfo).port;
    return peer;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  async close(): Promise<void> {
    for (const socket of this.connections) socket.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #accept(socket: WebSocket): void {
    const number = this.connections.push(socket);
    let queue: Promise<void> = Promise.resolve();
    let first = true;
    socket.on('message', (data) => {
      if (first) {
        first = false; // the $connect frame
        socket.send(JSON.stringify([{ $connected: { id: randomUUID() } }]));
        return;
      }
      this.frames.set(number, (this.frames.get(number) ?? 0) + 1);
      const value: unknown = JSON.parse(data.toString());
      for (const item of Array.isArray(value) ? value : [value]) {
        const run = () => this.#run(socket, item as Record<string, unknown>);
        if (this.#options.ordered === false) void run();
        else queue = queue.then(run);
      }
    });
  }

  async #run(socket: WebSocket, item: Record<string, unknown>): Promise<void> {
    const name = Object.keys(item).find((k) => k !== '$id')!;
    const id = item.$id;
    const signal = this.#options.signals?.[name];
    const outcome = signal ? await signal((item[name] ?? {}) as Record<string, unknown>) : { error: { code: 'UNKNOWN_SIGNAL', message: `No signal [${name}]` } };
    if (socket.readyState !== socket.OPEN) return;
    const frame = outcome === 'ok' ? [{ $ok: true, $id: id }] : 'error' in outcome ? [{ Errors: [outcome.error.message], code: outcome.error.code, $id: id }] : outcome.items.map((o) => ({ ...o, $id: id }));
    const text = JSON.stringify(frame);
    socket.send(text);
    if (this.#options.duplicate) socket.send(text);
  }
}
