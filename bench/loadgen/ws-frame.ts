/**
 * @module bench/loadgen/ws-frame
 * The WebSocket framing the load generator needs, and nothing more (RFC 6455 §5):
 * - {@link encodeFrame}: one frame, masked (client to server) or not (server to client, for tests).
 * - {@link FrameTemplate}: a call frame masked ONCE, with numeric slots patched in place per send,
 *   so sending costs a buffer copy plus a few digit writes (no JSON.stringify, no masking loop).
 * - {@link FrameParser}: an incremental parser for server frames: many frames per TCP chunk,
 *   frames split across chunks, 7/16/64-bit lengths, fragmented messages, masked input (tests).
 */

export const OPCODE = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** A fixed mask key: RFC 6455 asks for an unpredictable one to defeat proxy cache poisoning, which a loopback benchmark cannot suffer. */
export const MASK_KEY: Readonly<Uint8Array> = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Header length of a frame carrying `payloadLength` bytes. */
export function headerLength(payloadLength: number, masked: boolean): number {
  const base = payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10;
  return masked ? base + 4 : base;
}

/** Encode one final frame; masked with {@link MASK_KEY} (or `mask`) when `masked`. */
export function encodeFrame(payload: Uint8Array | string, opcode: number = OPCODE.TEXT, masked = true, mask: Uint8Array = MASK_KEY): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const n = body.length;
  const h = headerLength(n, masked);
  const out = Buffer.allocUnsafe(h + n);
  out[0] = 0x80 | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (n < 126) {
    out[1] = maskBit | n;
  } else if (n < 0x10000) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeUInt32BE(Math.floor(n / 0x100000000), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  if (!masked) {
    out.set(body, h);
    return out;
  }
  const k = h - 4;
  out[k] = mask[0]!; out[k + 1] = mask[1]!; out[k + 2] = mask[2]!; out[k + 3] = mask[3]!;
  for (let i = 0; i < n; i++) out[h + i] = body[i]! ^ mask[i & 3]!;
  return out;
}

/** A numeric slot of a template: `width` bytes at payload offset, right-aligned, padded with `pad`. */
interface Slot {
  /** Offset of the slot's first byte in the encoded frame. */
  readonly at: number;
  readonly width: number;
  /** Padding byte (space before a JSON number, '0' inside a JSON string), pre-masked per position. */
  readonly padMasked: Uint8Array;
  /** Mask byte for each position of the slot. */
  readonly mask: Uint8Array;
}

const SLOT_RE = /\{(\w+):(\d+)(z?)\}/g;

/**
 * A masked call frame with named numeric slots, written as `{name:width}` (padded with spaces,
 * legal JSON whitespace before a number) or `{name:widthz}` (zero-padded, for digits inside a
 * JSON string such as a channel name).
 *
 * @example
 * const echo = new FrameTemplate('{"Echo":{"t":{t:15},"i":{i:10}}}');
 * const end = echo.write(out, pos);        // copy the pre-masked frame
 * echo.set(out, pos, 0, nowUs);            // patch slot 0 (t) in place
 */
export class FrameTemplate {
  readonly frame: Buffer;
  readonly names: readonly string[];
  readonly #slots: Slot[] = [];

  constructor(template: string, mask: Uint8Array = MASK_KEY) {
    const names: string[] = [];
    const pieces: { at: number; width: number; pad: number }[] = [];
    let text = '';
    let last = 0;
    for (const m of template.matchAll(SLOT_RE)) {
      text += template.slice(last, m.index);
      const width = Number(m[2]);
      const pad = m[3] === 'z' ? 0x30 : 0x20;
      pieces.push({ at: Buffer.byteLength(text), width, pad });
      text += (pad === 0x30 ? '0' : ' ').repeat(width - 1) + '0';
      names.push(m[1]!);
      last = m.index + m[0].length;
    }
    text += template.slice(last);
    const payload = Buffer.from(text);
    this.frame = encodeFrame(payload, OPCODE.TEXT, true, mask);
    const h = this.frame.length - payload.length;
    for (const p of pieces) {
      const maskBytes = new Uint8Array(p.width);
      const padMasked = new Uint8Array(p.width);
      for (let j = 0; j < p.width; j++) {
        maskBytes[j] = mask[(p.at + j) & 3]!;
        padMasked[j] = p.pad ^ maskBytes[j]!;
      }
      this.#slots.push({ at: h + p.at, width: p.width, padMasked, mask: maskBytes });
    }
    this.names = names;
  }

  get length(): number {
    return this.frame.length;
  }

  /** Copy the frame to `out` at `pos`; returns the position after it. */
  write(out: Buffer, pos: number): number {
    return pos + this.frame.copy(out, pos);
  }

  /**
   * Patch slot `index` of the frame written at `pos` with the non-negative integer `value`.
   * Digits that do not fit the slot are dropped from the left (the value wraps modulo 10^width).
   */
  set(out: Buffer, pos: number, index: number, value: number): void {
    const s = this.#slots[index]!;
    const base = pos + s.at;
    let v = Math.floor(value);
    let j = s.width - 1;
    do {
      const q = Math.floor(v / 10);
      out[base + j] = (0x30 + (v - q * 10)) ^ s.mask[j]!;
      v = q;
      j--;
    } while (v > 0 && j >= 0);
    for (; j >= 0; j--) out[base + j] = s.padMasked[j]!;
  }
}

/** Called once per complete message: payload is `buf[start, end)`, valid only during the call. */
export type FrameHandler = (opcode: number, buf: Buffer, start: number, end: number) => void;

/**
 * Incremental parser of a byte stream of frames. The fast path parses frames straight out of the
 * chunk; only a frame cut by a chunk boundary is copied, into one buffer sized from its header.
 */
export class FrameParser {
  readonly #onFrame: FrameHandler;
  /** Bytes of an incomplete frame (header and whatever payload arrived). */
  #partial: Buffer | null = null;
  #partialLen = 0;
  /** Total length of the incomplete frame once its header is known, else -1. */
  #partialNeed = -1;
  /** Fragments of a message sent in several frames (FIN=0), and its opcode. */
  #fragments: Buffer[] | null = null;
  #fragmentOpcode = 0;
  readonly maxMessage: number;

  constructor(onFrame: FrameHandler, maxMessage = 256 * 1024 * 1024) {
    this.#onFrame = onFrame;
    this.maxMessage = maxMessage;
  }

  push(chunk: Buffer): void {
    const buf = chunk;
    let pos = 0;
    if (this.#partial !== null) {
      pos = this.#fillPartial(chunk);
      if (this.#partial !== null) return; // still incomplete: the whole chunk was consumed
    }
    const len = buf.length;
    while (pos < len) {
      const need = frameLength(buf, pos, len);
      if (need < 0 || pos + need > len) {
        this.#startPartial(buf, pos, len, need);
        return;
      }
      this.#emit(buf, pos, need);
      pos += need;
    }
  }

  /** Copy the tail of a chunk that holds an incomplete frame. */
  #startPartial(buf: Buffer, pos: number, len: number, need: number): void {
    const have = len - pos;
    if (need > this.maxMessage + 14) throw new RangeError(`frame of ${need} bytes exceeds maxMessage ${this.maxMessage}`);
    this.#partial = Buffer.allocUnsafe(need < 0 ? 14 : need);
    buf.copy(this.#partial, 0, pos, len);
    this.#partialLen = have;
    this.#partialNeed = need;
  }

  /** Feed a new chunk into the incomplete frame; returns how many chunk bytes were used. */
  #fillPartial(chunk: Buffer): number {
    let used = 0;
    if (this.#partialNeed < 0) {
      // Header still incomplete: top up to 14 bytes (the longest header) and retry.
      const take = Math.min(14 - this.#partialLen, chunk.length);
      chunk.copy(this.#partial!, this.#partialLen, 0, take);
      const need = frameLength(this.#partial!, 0, this.#partialLen + take);
      if (need < 0) {
        this.#partialLen += take;
        return take;
      }
      if (need > this.maxMessage + 14) throw new RangeError(`frame of ${need} bytes exceeds maxMessage ${this.maxMessage}`);
      const grown = Buffer.allocUnsafe(need);
      this.#partial!.copy(grown, 0, 0, Math.min(this.#partialLen, need));
      this.#partial = grown;
      this.#partialNeed = need;
      // `grown` holds the bytes the partial had before this chunk; copy from the chunk's start.
    }
    const need = this.#partialNeed;
    const take = Math.min(need - this.#partialLen, chunk.length);
    chunk.copy(this.#partial!, this.#partialLen, used, used + take);
    this.#partialLen += take;
    used += take;
    if (this.#partialLen < need) return used;
    const frame = this.#partial!;
    this.#partial = null;
    this.#partialLen = 0;
    this.#partialNeed = -1;
    this.#emit(frame, 0, need);
    return used;
  }

  /** Deliver the frame at `buf[pos, pos + total)`. */
  #emit(buf: Buffer, pos: number, total: number): void {
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const n7 = b1 & 0x7f;
    let start = pos + (n7 < 126 ? 2 : n7 === 126 ? 4 : 10);
    const end = pos + total;
    if (masked) {
      const k = start;
      start += 4;
      for (let i = start; i < end; i++) buf[i] = buf[i]! ^ buf[k + ((i - start) & 3)]!;
    }
    if (opcode >= 0x8) {
      this.#onFrame(opcode, buf, start, end); // control frames may interleave fragments
      return;
    }
    if (fin && opcode !== OPCODE.CONTINUATION && this.#fragments === null) {
      this.#onFrame(opcode, buf, start, end);
      return;
    }
    if (opcode !== OPCODE.CONTINUATION) {
      this.#fragments = [];
      this.#fragmentOpcode = opcode;
    }
    if (this.#fragments === null) throw new Error('continuation frame without a first fragment');
    this.#fragments.push(Buffer.from(buf.subarray(start, end)));
    if (fin) {
      const whole = Buffer.concat(this.#fragments);
      this.#fragments = null;
      this.#onFrame(this.#fragmentOpcode, whole, 0, whole.length);
    }
  }
}

/**
 * Total byte length (header + payload) of the frame starting at `buf[pos]`, or -1 when fewer
 * bytes than its header are available before `len`.
 */
export function frameLength(buf: Buffer, pos: number, len: number): number {
  if (len - pos < 2) return -1;
  const b1 = buf[pos + 1]!;
  const mask = (b1 & 0x80) !== 0 ? 4 : 0;
  const n7 = b1 & 0x7f;
  if (n7 < 126) return 2 + mask + n7;
  if (n7 === 126) {
    if (len - pos < 4) return -1;
    return 4 + mask + ((buf[pos + 2]! << 8) | buf[pos + 3]!);
  }
  if (len - pos < 10) return -1;
  const hi = buf.readUInt32BE(pos + 2);
  const lo = buf.readUInt32BE(pos + 6);
  return 10 + mask + hi * 0x100000000 + lo;
}
