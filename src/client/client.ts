/**
 * @module client/client
 * The client's engine: one WebSocket at a time, speaking `lexicons.v1`, as a small state machine:
 *
 *   disconnected --connect()--> connecting --$connected--> open
 *        ^                          |                        |
 *        +------ backoff timer -----+----- socket closed ----+
 *   any state --close() / AUTH_FAILED / attempts exhausted--> closed (terminal until connect())
 *
 * Calls carry `$id` (and `$key`); each settles exactly once, on the first frame naming its id, its
 * timeout, `CONNECTION_LOST`, `ABORTED` or `CLOSED`. Calls made before `open` wait; calls of one
 * tick share list frames within the server's limits. Reconnects send the resume token and the
 * channel positions (client/channels.ts); `replay` and `resend` calls go again after `$connected`.
 */
import { Frame, MAX_ID_SCAN_BYTES, SUBPROTOCOL, WireCode } from '../wire.js';
import { backoffDelay } from './backoff.js';
import { ClientCode, ClientError } from './errors.js';
import { emit, errorOf, frames, isObject, itemName, positive, report, settingsOf, type Settings } from './util.js';
import { Channels, type ChannelEvent, type Member, type Position } from './channels.js';
import { LiveSet, type LiveView } from './live.js';
import type { ClientOptions, ClientState, StateEvent, WebSocketLike } from './options.js';
import type { CallId, CallOptions, Item, Pending } from './types.js';

/**
 * Calls batched into one frame stay within this many bytes of UTF-8: the server reads the `$id`s
 * of a frame it refuses unparsed (rate limit, queue full) only up to this size, so every call
 * of such a frame still gets its error. A single larger call goes alone.
 */
const MAX_FRAME_BYTES = MAX_ID_SCAN_BYTES;

export class Engine {
  readonly #headers: ClientOptions['headers'];
  readonly #o: Settings;
  /** Calls and bytes per frame on the current connection (the option, within the server's `$connected` limits). */
  #callsPerFrame: number;
  #bytesPerFrame = MAX_FRAME_BYTES;

  #state: ClientState = 'disconnected';
  #sock: WebSocketLike | undefined;
  #connectionId: string | undefined;
  /** Consecutive attempts that did not reach `open`. */
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by an `Errors` item received before `$connected` (AUTH_FAILED stops reconnecting). */
  #refusal: ClientError | undefined;
  #nextId = 1;
  /** Calls waiting for `open`, in call order (a settled call leaves it). */
  #queue = new Set<Pending>();
  /** Calls marked `replay`, in call order. */
  #replays: Pending[] = [];
  /** `resend` calls whose connection dropped before their outcome: re-sent if the session resumes. */
  #limbo = new Set<Pending>();
  #nextKey = 1;
  /** The resume token of the last `$connected` (sent in the next `$connect`). */
  #resume: string | undefined;
  readonly #channels = new Channels((event) => emit(this.#channelHandlers, event), (text) => this.#sock?.send(text));
  readonly #channelHandlers = new Set<(event: ChannelEvent) => void>();
  readonly #live = new LiveSet((text) => this.#state === 'open' && this.#sock?.send(text));
  /** Calls sent on the current socket, by `$id`. */
  readonly #inflight = new Map<CallId, Pending>();
  /** Call texts to send at the end of this tick. */
  #outbox: string[] = [];
  #flushing = false;
  readonly #handlers = new Map<string, Set<(payload: any, item: Item) => void>>();
  readonly #stateHandlers = new Set<(event: StateEvent) => void>();

  constructor(options: ClientOptions) {
    this.#o = settingsOf(options);
    this.#headers = options.headers;
    this.#callsPerFrame = this.#o.maxCallsPerFrame;
    if (options.autoConnect !== false) this.connect();
  }

  get state(): ClientState {
    return this.#state;
  }

  get connectionId(): string | undefined {
    return this.#connectionId;
  }

  /** Starts connecting (now, also while a reconnect is scheduled, or again after `closed`). */
  connect(): void {
    if (this.#state === 'connecting' || this.#state === 'open') return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const sock = new this.#o.WebSocket(this.#o.url, SUBPROTOCOL);
    this.#sock = sock;
    this.#refusal = undefined;
    this.#connectTimer = setTimeout(() => this.#drop(sock, 1006, `no $connected within ${this.#o.connectTimeoutMs} ms`), this.#o.connectTimeoutMs);
    sock.onopen = () => {
      if (sock === this.#sock) void this.#sendConnect(sock);
    };
    sock.onmessage = (event: { data: unknown }) => {
      if (sock === this.#sock && typeof event.data === 'string') this.#receive(event.data);
    };
    sock.onclose = (event: { code?: number; reason?: string }) => {
      if (sock === this.#sock) this.#lost(event.code ?? 1006, event.reason ?? '');
    };
    sock.onerror = () => {
      // a close event follows; its code says what happened
    };
    this.#setState({ state: 'connecting', attempt: this.#attempt });
  }

  /** Stops for good (until `connect()`): closes the socket (1000) and rejects unsettled calls with `CLOSED`. */
  close(): void {
    if (this.#state === 'closed') return;
    const sock = this.#sock;
    this.#sock = undefined;
    try {
      sock?.close(1000, 'closed by the client');
    } catch {
      // a socket still connecting may refuse a close code in some implementations: it is dropped anyway
    }
    this.#stop(1000, 'closed by the client', undefined);
  }

  call(name: string, args: unknown, options: CallOptions = {}): Promise<unknown> {
    if (this.#state === 'closed') return Promise.reject(new ClientError(ClientCode.CLOSED, `client is closed; [${name}] was not sent`));
    let head: string;
    try {
      head = `{${JSON.stringify(name)}:${JSON.stringify(args ?? {})}`;
    } catch (err) {
      return Promise.reject(err);
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new ClientError(ClientCode.ABORTED, `[${name}] aborted`));
    const timeoutMs = positive('timeoutMs', options.timeoutMs, this.#o.timeoutMs);
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        name,
        head,
        replay: options.replay === true,
        resend: options.resend === true,
        key: `k${this.#nextKey++}`,
        resolve,
        reject,
        timer: setTimeout(() => this.#settle(pending, new ClientError(ClientCode.CALL_TIMEOUT, `[${name}] got no answer within ${timeoutMs} ms`)), timeoutMs),
        signal,
        onAbort: () => {
          this.#unreplay(pending);
          this.#settle(pending, new ClientError(ClientCode.ABORTED, `[${name}] aborted`));
        },
        id: undefined,
        done: false,
      };
      signal?.addEventListener('abort', pending.onAbort);
      if (pending.replay) this.#replays.push(pending);
      if (this.#state === 'open') this.#send(pending);
      else if (!pending.replay) this.#queue.add(pending); // replays are sent from #replays at open
    });
  }

  live(name: string, args?: unknown): LiveView {
    return this.#live.open(name, args);
  }

  on(name: string, handler: (payload: any, item: Item) => void): () => void {
    let set = this.#handlers.get(name);
    if (!set) this.#handlers.set(name, (set = new Set()));
    set.add(handler);
    return () => void set.delete(handler);
  }

  onState(handler: (event: StateEvent) => void): () => void {
    this.#stateHandlers.add(handler);
    return () => void this.#stateHandlers.delete(handler);
  }

  onChannel(handler: (event: ChannelEvent) => void): () => void {
    this.#channelHandlers.add(handler);
    return () => void this.#channelHandlers.delete(handler);
  }

  get positions(): Record<string, Position> {
    return this.#channels.positions();
  }

  presence(channel: string): Member[] {
    return this.#channels.presence(channel);
  }

  #setState(event: StateEvent): void {
    this.#state = event.state;
    emit(this.#stateHandlers, event);
  }

  async #sendConnect(sock: WebSocketLike): Promise<void> {
    if (sock.protocol !== SUBPROTOCOL) {
      this.#sock = undefined;
      sock.close(1000, 'no lexicons.v1');
      this.#stop(1002, 'the server did not select the lexicons.v1 subprotocol', new ClientError(WireCode.PROTOCOL, 'the server does not speak lexicons.v1 (an older lexicons, or not a lexicons server)'));
      return;
    }
    let headers: Record<string, unknown> | undefined;
    try {
      headers = typeof this.#headers === 'function' ? await this.#headers() : this.#headers;
    } catch (err) {
      if (sock !== this.#sock) return;
      this.#sock = undefined;
      sock.close(1000, 'headers failed');
      this.#stop(1000, 'the headers function threw', new ClientError(ClientCode.HEADERS_FAILED, err instanceof Error ? err.message : String(err)));
      return;
    }
    if (sock !== this.#sock) return;
    // Positions and the resume token go every time: the server recovers from them (docs/channels.md).
    sock.send(JSON.stringify({ [Frame.CONNECT]: { headers, positions: this.#channels.positions(), resume: this.#resume } }));
  }

  #receive(text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not JSON: nothing to deliver
    }
    const items = Array.isArray(frame) ? frame : [frame];
    // Outcomes of this frame's calls, applied after every item reached its handlers.
    let outcomes: Map<Pending, { value: unknown; error: ClientError | undefined }> | undefined;
    for (const item of items) {
      if (!isObject(item)) continue;
      const name = itemName(item);
      if (name === undefined) continue;
      if (name === Frame.CONNECTED) {
        const connected = isObject(item[name]) ? (item[name] as Record<string, unknown>) : {};
        this.#resume = typeof connected.resume === 'string' ? connected.resume : undefined;
        this.#opened(String(connected.id), isObject(connected.limits) ? connected.limits : {}, connected.resumed === true);
        continue;
      }
      if (name === Frame.LIVE) {
        this.#live.receive(item[name]);
        continue;
      }
      this.#channels.control(name, item[name]);
      const error = name === Frame.ERRORS ? errorOf(item) : undefined;
      if (error && this.#state === 'connecting') this.#refusal = error;
      // An item of a history channel out of sequence (duplicate, or after a gap) is not delivered.
      if (name !== Frame.OK && this.#channels.accept(item[Frame.OFF])) this.#deliver(name, item);
      const id = item[Frame.ID];
      const pending = typeof id === 'number' ? this.#inflight.get(id) : undefined;
      if (!pending) continue;
      outcomes ??= new Map();
      let outcome = outcomes.get(pending);
      if (!outcome) outcomes.set(pending, (outcome = { value: undefined, error: undefined }));
      if (error) outcome.error ??= error;
      else if (name === pending.name && outcome.value === undefined) outcome.value = item[name];
    }
    if (!outcomes) return;
    for (const [pending, outcome] of outcomes) {
      this.#inflight.delete(pending.id!);
      if (outcome.error && !pending.done) this.#unreplay(pending); // a call the server refuses is not replayed
      this.#settle(pending, outcome.error, outcome.value);
    }
  }

  #deliver(name: string, item: Record<string, unknown>): void {
    const set = this.#handlers.get(name);
    if (!set) return;
    for (const handler of set) {
      try {
        handler(item[name], item);
      } catch (err) {
        report(err);
      }
    }
  }

  #opened(id: string, limits: Record<string, unknown>, resumed: boolean): void {
    if (this.#state !== 'connecting') return;
    const { maxCallsPerFrame: calls, maxMessageBytes: bytes } = limits;
    this.#callsPerFrame = typeof calls === 'number' && calls >= 1 ? Math.min(this.#o.maxCallsPerFrame, calls) : this.#o.maxCallsPerFrame;
    this.#bytesPerFrame = typeof bytes === 'number' && bytes >= 1 ? Math.min(MAX_FRAME_BYTES, bytes) : MAX_FRAME_BYTES;
    clearTimeout(this.#connectTimer);
    this.#attempt = 0;
    this.#connectionId = id;
    // Replays, then the waiting calls, are queued before the `open` handlers run, so a call a
    // handler makes (e.g. fetching history) goes after the replayed subscriptions.
    this.#state = 'open';
    for (const pending of this.#replays) {
      // Settled already: it runs again (a fresh key); in flight when the connection dropped: same key.
      if (pending.done) pending.key = `k${this.#nextKey++}`;
      this.#send(pending);
    }
    const limbo = this.#limbo;
    this.#limbo = new Set();
    for (const pending of limbo) {
      if (resumed) this.#send(pending);
      else this.#settle(pending, new ClientError(ClientCode.CONNECTION_LOST, `connection lost before the outcome of [${pending.name}] and the session was not resumed (it may have run)`));
    }
    const queue = this.#queue;
    this.#queue = new Set();
    for (const pending of queue) this.#send(pending);
    this.#live.opened();
    this.#setState({ state: 'open', id, resumed });
  }

  #send(pending: Pending): void {
    const id = this.#nextId++;
    pending.id = id;
    this.#inflight.set(id, pending);
    this.#outbox.push(`${pending.head},"${Frame.ID}":${id},"${Frame.KEY}":"${pending.key}"}`);
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /**
   * Sends the outbox as frames of at most `maxCallsPerFrame` calls and {@link MAX_FRAME_BYTES}
   * bytes (within the server's limits; a single call as an object, never split).
   */
  #flush(): void {
    this.#flushing = false;
    const texts = this.#outbox;
    this.#outbox = [];
    const sock = this.#sock;
    if (!sock || this.#state !== 'open') return; // the socket closed meanwhile: its calls were settled or kept for replay
    try {
      for (const frame of frames(texts, this.#callsPerFrame, this.#bytesPerFrame)) sock.send(frame);
    } catch {
      // the socket is closing: its close event settles the calls
    }
  }

  /** The socket closed (or was given up): settle what it carried, then reconnect or stop. */
  #lost(code: number, reason: string): void {
    clearTimeout(this.#connectTimer);
    this.#sock = undefined;
    this.#connectionId = undefined;
    this.#outbox = [];
    const lost = [...this.#inflight.values()];
    this.#inflight.clear();
    this.#channels.reset();
    for (const pending of lost) {
      if (pending.replay) continue; // re-sent from #replays at the next open
      if (pending.resend) this.#limbo.add(pending);
      else this.#settle(pending, new ClientError(ClientCode.CONNECTION_LOST, `connection lost before the outcome of [${pending.name}] (it may have run)`));
    }
    const refusal = this.#refusal;
    this.#refusal = undefined;
    if (refusal?.code === WireCode.AUTH_FAILED) return this.#stop(code, reason, refusal);
    const r = this.#o.reconnect;
    if (r === false) return this.#stop(code, reason, refusal);
    if (this.#attempt >= r.maxAttempts) {
      return this.#stop(code, reason, new ClientError(ClientCode.RECONNECT_FAILED, `gave up after ${this.#attempt} attempts (last close ${code}${reason ? ` ${reason}` : ''})`));
    }
    const delayMs = backoffDelay(this.#attempt, r.baseDelayMs, r.maxDelayMs);
    this.#attempt++;
    this.#retryTimer = setTimeout(() => this.connect(), delayMs);
    this.#setState({ state: 'disconnected', code, reason, ...(refusal ? { error: refusal } : {}), attempt: this.#attempt, delayMs });
  }

  /** Gives up a socket that is not answering (connect timeout). */
  #drop(sock: WebSocketLike, code: number, reason: string): void {
    if (sock !== this.#sock) return;
    try {
      sock.close(1000, reason);
    } catch {
      // still connecting: dropped anyway
    }
    this.#lost(code, reason);
  }

  /** Enters `closed`: no reconnect; every unsettled call is rejected. */
  #stop(code: number, reason: string, error: ClientError | undefined): void {
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#connectionId = undefined;
    this.#outbox = [];
    const why = error ?? new ClientError(ClientCode.CLOSED, `client closed (${code}${reason ? ` ${reason}` : ''})`);
    const unsettled = [...this.#inflight.values(), ...this.#queue, ...this.#replays, ...this.#limbo];
    this.#limbo = new Set();
    this.#resume = undefined;
    this.#inflight.clear();
    this.#queue = new Set();
    for (const pending of unsettled) this.#settle(pending, why);
    this.#setState({ state: 'closed', code, reason, ...(error ? { error } : {}) });
  }

  #unreplay(pending: Pending): void {
    const i = this.#replays.indexOf(pending);
    if (i >= 0) this.#replays.splice(i, 1);
    pending.signal?.removeEventListener('abort', pending.onAbort);
  }

  #settle(pending: Pending, error: ClientError | undefined, value?: unknown): void {
    if (pending.done) return;
    pending.done = true;
    clearTimeout(pending.timer);
    if (!pending.replay) pending.signal?.removeEventListener('abort', pending.onAbort); // a replay listens until unreplayed
    this.#queue.delete(pending);
    this.#limbo.delete(pending);
    if (pending.id !== undefined && this.#inflight.get(pending.id) === pending) this.#inflight.delete(pending.id);
    if (error) pending.reject(error);
    else pending.resolve(value);
  }
}
