/**
 * A raw-socket WebSocket client for hostile tests: the upgrade by hand, frames built bit by bit
 * (FIN, reserved bits, any opcode, masked or not), and the server's frames parsed with the load
 * generator's {@link FrameParser}, so a test reads the close frame the server really sent (or
 * sees that none came). Plus the RSS of a process, from /proc.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { encodeFrame, FrameParser, OPCODE } from '../../bench/loadgen/ws-frame.js';

export { OPCODE };

export interface FrameBits {
  fin?: boolean;
  /** Reserved bits, e.g. 0x40 (RSV1). */
  rsv?: number;
  masked?: boolean;
}

/** One frame with the given bits; payloads of any length. */
export function frame(opcode: number, payload: Uint8Array | string, bits: FrameBits = {}): Buffer {
  const out = encodeFrame(payload, opcode, bits.masked ?? true);
  out[0] = ((bits.fin ?? true) ? 0x80 : 0) | (bits.rsv ?? 0) | opcode;
  return out;
}

/** A close frame body: code (2 bytes) and reason bytes. */
export function closeBody(code: number, reason: Uint8Array | string = ''): Buffer {
  const text = typeof reason === 'string' ? Buffer.from(reason) : Buffer.from(reason);
  const body = Buffer.alloc(2 + text.length);
  body.writeUInt16BE(code, 0);
  text.copy(body, 2);
  return body;
}

export function upgradeRequest(headers: Record<string, string> = {}, path = '/'): string {
  let text = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
  return text + '\r\n';
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** A raw connection after a successful upgrade. */
export class RawClient {
  readonly socket: net.Socket;
  readonly frames: ServerFrame[] = [];
  /** Code of the server's close frame: a number, 1005 for an empty close frame, null for none. */
  closeCode: number | null = null;
  readonly ended: Promise<void>;
  readonly #parser: FrameParser;
  #waiters: Array<() => void> = [];

  /** Answer pings (false: a half-open peer that never answers). */
  pong = true;

  constructor(socket: net.Socket, leftover: Buffer) {
    this.socket = socket;
    this.#parser = new FrameParser((opcode, buf, start, end) => {
      const payload = Buffer.from(buf.subarray(start, end));
      if (opcode === OPCODE.CLOSE) this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (opcode === OPCODE.PING && this.pong && !socket.destroyed) socket.write(frame(OPCODE.PONG, payload));
      this.frames.push({ opcode, payload });
      for (const w of this.#waiters.splice(0)) w();
    });
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined); // resets are expected: the outcome is read from `ended`
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#parser.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    if (leftover.length > 0) this.#parser.push(leftover);
  }

  write(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Text payloads of the data frames received. */
  texts(): string[] {
    return this.frames.filter((f) => f.opcode === OPCODE.TEXT).map((f) => f.payload.toString('utf8'));
  }

  #consumed = 0;

  /** The next text frame not yet returned by this method (waits for it, bounded in time). */
  async nextText(timeoutMs = 5000): Promise<string> {
    const seen = this.#consumed;
    const deadline = Date.now() + timeoutMs;
    while (this.texts().length <= seen) {
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.destroyed) throw new Error(`no text frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.#consumed++;
    return this.texts()[seen]!;
  }

  /** Resolves once the TCP connection is closed, bounded in time (then destroys it and throws). */
  async waitEnded(timeoutMs = 5000): Promise<{ closeCode: number | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.socket.destroy();
        reject(new Error(`connection not closed within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return { closeCode: this.closeCode };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface HttpAnswer {
  /** Status line of the answer, or '' when the server closed without answering. */
  status: string;
  socket: net.Socket;
  rest: Buffer;
}

/** Sends `request` (in one write) and reads the HTTP answer head; bounded in time. */
export function sendRequest(port: number, request: Buffer | string, timeoutMs = 5000, afterWrite?: (socket: net.Socket) => void): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let head = Buffer.alloc(0);
    let done = false;
    const finish = (status: string, rest: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      resolve({ status, socket, rest });
    };
    const timer = setTimeout(() => {
      done = true;
      socket.destroy();
      reject(new Error(`no HTTP answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0) finish(head.subarray(0, head.indexOf('\r\n')).toString('latin1'), head.subarray(end + 4));
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.once('close', () => finish(head.length > 0 ? head.toString('latin1').split('\r\n')[0]! : '', Buffer.alloc(0)));
    socket.once('connect', () => {
      socket.write(request);
      afterWrite?.(socket);
    });
  });
}

/** Upgrades a raw connection; throws unless the answer is 101. */
export async function connectRaw(port: number, headers: Record<string, string> = {}): Promise<RawClient> {
  const answer = await sendRequest(port, upgradeRequest(headers));
  if (!answer.status.startsWith('HTTP/1.1 101')) {
    answer.socket.destroy();
    throw new Error(`upgrade refused: ${answer.status || '(closed)'}`);
  }
  const client = new RawClient(answer.socket, answer.rest);
  answer.socket.resume();
  return client;
}

/** Resident set size of a process in bytes (VmRSS from /proc). */
export async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

export const MiB = 1024 * 1024;
