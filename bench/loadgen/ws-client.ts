/**
 * @module bench/loadgen/ws-client
 * A minimal WebSocket client on a raw `node:net` socket, built for load generation: the HTTP
 * upgrade by hand, outgoing frames appended to a pooled slab and flushed in one write per batch,
 * incoming frames parsed straight out of TCP chunks by {@link FrameParser}.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { encodeFrame, FrameParser, OPCODE } from './ws-frame.js';

/** Monotonic microseconds (CLOCK_MONOTONIC: the same clock in every process of this machine). */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Request target, e.g. `/` or `/socket.io/?EIO=4&transport=websocket`. */
  path: string;
  /** Extra upgrade-request headers (the lexicons header data, e.g. `Login`). */
  headers?: Record<string, string>;
  /** Source address: rotate over 127.0.0.x in connection storms to spread ephemeral ports. */
  localAddress?: string;
  /** Give up on the handshake after this long. */
  timeoutMs: number;
}

/** Text or binary message handler: payload is `buf[start, end)`, valid only during the call. */
export type MessageHandler = (buf: Buffer, start: number, end: number, opcode: number) => void;

const SLAB = 64 * 1024;
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export class WsConnectionError extends Error {
  readonly status: number;
  constructor(message: string, status = 0) {
    super(message);
    this.name = 'WsConnectionError';
    this.status = status;
  }
}

export class RawWsConnection {
  readonly socket: net.Socket;
  onMessage: MessageHandler = () => {};
  onClose: (error: Error | null) => void = () => {};
  closed = false;
  /** Close code sent by the server, if any. */
  closeCode = 0;
  #slab: Buffer = Buffer.allocUnsafe(SLAB);
  #slabStart = 0;
  #pos = 0;
  readonly #parser: FrameParser;
  #leftover: Buffer | null;

  /** The socket arrives paused: set the handlers, then call {@link start}. */
  constructor(socket: net.Socket, leftover: Buffer | null) {
    this.socket = socket;
    this.#leftover = leftover;
    this.#parser = new FrameParser((opcode, buf, start, end) => this.#frame(opcode, buf, start, end));
    socket.on('close', () => this.#closed(null));
    socket.on('error', (error) => this.#closed(error));
  }

  /** Start reading: frames that arrived with the upgrade response are parsed first. */
  start(): this {
    const leftover = this.#leftover;
    this.#leftover = null;
    if (leftover !== null && leftover.length > 0) this.#data(leftover);
    this.socket.on('data', (chunk: Buffer) => this.#data(chunk));
    this.socket.resume();
    return this;
  }

  /** Hook run before each TCP chunk is parsed (used to take one timestamp per chunk). */
  onChunk: () => void = () => {};
  /** Hook run after each TCP chunk is parsed (used to flush replies in one write). */
  onChunkDone: () => void = () => {};

  #data(chunk: Buffer): void {
    if (this.closed) return;
    this.onChunk();
    try {
      this.#parser.push(chunk);
    } catch (error) {
      this.socket.destroy(error as Error);
      return;
    }
    this.onChunkDone();
  }

  #frame(opcode: number, buf: Buffer, start: number, end: number): void {
    if (opcode === OPCODE.TEXT || opcode === OPCODE.BINARY) {
      this.onMessage(buf, start, end, opcode);
    } else if (opcode === OPCODE.PING) {
      this.sendRaw(encodeFrame(buf.subarray(start, end), OPCODE.PONG));
      this.flush();
    } else if (opcode === OPCODE.CLOSE) {
      this.closeCode = end - start >= 2 ? buf.readUInt16BE(start) : 1005;
      this.close(1000);
    }
  }

  #closed(error: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(error);
  }

  /**
   * Room for `n` bytes in the outgoing slab: returns the buffer and the position to write at.
   * The bytes go out at the next {@link flush}.
   */
  reserve(n: number): [Buffer, number] {
    if (this.#pos + n > this.#slab.length) {
      this.flush();
      // Written slices still belong to the socket until sent: start a new slab, never reuse.
      this.#slab = Buffer.allocUnsafe(Math.max(SLAB, n));
      this.#slabStart = 0;
      this.#pos = 0;
    }
    const at = this.#pos;
    this.#pos += n;
    return [this.#slab, at];
  }

  /** Queue ready-made bytes (an encoded frame). */
  sendRaw(frame: Buffer): void {
    const [buf, at] = this.reserve(frame.length);
    frame.copy(buf, at);
  }

  /** Write everything queued since the last flush in one `socket.write`. */
  flush(): boolean {
    if (this.#pos === this.#slabStart || this.closed) return true;
    const slice = this.#slab.subarray(this.#slabStart, this.#pos);
    this.#slabStart = this.#pos;
    return this.socket.write(slice);
  }

  /** Bytes accepted by `write` but not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.socket.writableLength + (this.#pos - this.#slabStart);
  }

  /** Send a close frame and half-close; the socket ends when the server answers. */
  close(code = 1000): void {
    if (this.closed || this.socket.writableEnded) return;
    const body = Buffer.allocUnsafe(2);
    body.writeUInt16BE(code, 0);
    this.sendRaw(encodeFrame(body, OPCODE.CLOSE));
    this.flush();
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Open a TCP connection and perform the WebSocket upgrade; rejects on any non-101 answer. */
export function connectWs(options: ConnectOptions): Promise<RawWsConnection> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = net.connect({ host: options.host, port: options.port, localAddress: options.localAddress, noDelay: true });
    let head: Buffer | null = null;
    let done = false;
    const fail = (error: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new WsConnectionError(`handshake timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
    socket.on('error', fail);
    socket.on('close', () => fail(new WsConnectionError('connection closed during handshake')));
    socket.on('connect', () => {
      let request = `GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
      for (const [name, value] of Object.entries(options.headers ?? {})) request += `${name}: ${value}\r\n`;
      socket.write(request + '\r\n');
    });
    const onData = (chunk: Buffer) => {
      head = head === null ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) fail(new WsConnectionError('upgrade response headers too long'));
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const text = head.subarray(0, end).toString('latin1');
      const statusLine = text.slice(0, text.indexOf('\r\n'));
      const status = Number(statusLine.split(' ')[1]);
      if (status !== 101) return fail(new WsConnectionError(`upgrade refused: ${statusLine}`, status));
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text)?.[1];
      const expected = createHash('sha1').update(key + WS_GUID).digest('base64');
      if (accept !== expected) return fail(new WsConnectionError('bad Sec-WebSocket-Accept'));
      done = true;
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      resolve(new RawWsConnection(socket, head.subarray(end + 4)));
    };
    socket.on('data', onData);
  });
}
