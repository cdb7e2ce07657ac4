/**
 * @module storage/wal-format
 * The on-disk format of the write-ahead log: segment files, record framing, checksums, and a
 * streaming reader that stops at the first torn or corrupt record (see docs/durability.md).
 *
 * ```
 * segment  wal-<n>.log (n zero-padded to 8 digits) = 8-byte magic "LXWAL01\n", then records
 * record   [u32 LE payload length][u32 LE crc32(payload)][payload]
 * payload  [u8 type][u64 LE commit id][body]
 *          type 1 = commit: body is the UTF-8 JSON of ChangeSet.tables (-0 kept as {"-0":1})
 *          type 2 = abort:  body is empty; cancels the latest record with that commit id (its
 *                           writer never published it)
 * ```
 *
 * @example
 * const scan = await scanSegment(path, (record) => { ... });
 * if (scan.problem) console.log(`cut at ${scan.validBytes}: ${scan.problem}`);
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { ChangeSet } from './api.js';
import { fsyncDir } from './atomic-file.js';

let table: Uint32Array | undefined;

/** CRC-32 (IEEE, zlib's) in JavaScript, for Node 20 releases before zlib.crc32 (20.15). */
export function crc32Fallback(data: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const crc32: (data: Uint8Array) => number = (zlib as { crc32?: (data: Uint8Array) => number }).crc32 ?? crc32Fallback;

export const SEGMENT_MAGIC = Buffer.from('LXWAL01\n', 'latin1');
export const HEADER_BYTES = SEGMENT_MAGIC.length;
/** Frame bytes before the payload. */
export const FRAME_BYTES = 8;
/** Payload bytes before the body. */
const PAYLOAD_HEAD = 9;
/** Largest payload accepted (a bigger length field is corruption, not a record). */
export const MAX_PAYLOAD_BYTES = 1 << 30;

export const RecordType = { COMMIT: 1, ABORT: 2 } as const;

/** A LOG error: the log is corrupt, foreign, or cannot be replayed against the Models. */
export function logError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.LOG, message);
}

export type WalRecord =
  | { readonly type: 'commit'; readonly commitId: number; readonly tables: ChangeSet['tables'] }
  | { readonly type: 'abort'; readonly commitId: number };

const SEGMENT_NAME = /^wal-(\d{8,})\.log$/;
/** A segment's name, possibly followed by a suffix (a segment set aside: `wal-00000003.log.discarded`). */
const SEGMENT_NAME_START = /^wal-(\d{8,})\.log/;
/** Appended to the name of a segment set aside after a corrupt record (never replayed). */
export const DISCARDED_SUFFIX = '.discarded';

export function segmentName(n: number): string {
  return `wal-${String(n).padStart(8, '0')}.log`;
}

/** The path of segment `n` in the data folder `dir`. */
export function segmentPath(dir: string, n: number): string {
  return join(dir, segmentName(n));
}

/** The segment number of a file name, or null when it is not a segment. */
export function segmentNumber(name: string): number | null {
  const m = SEGMENT_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** The segment number a file name starts with (a segment, or one set aside), or null. */
export function segmentNumberOfAny(name: string): number | null {
  const m = SEGMENT_NAME_START.exec(name);
  return m ? Number(m[1]) : null;
}

function keepNegativeZero(_key: string, value: unknown): unknown {
  return isNegativeZero(value) ? { '-0': 1 } : value;
}

function restoreNegativeZero(_key: string, value: unknown): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (value as { '-0'?: unknown })['-0'] === 1 && Object.keys(value).length === 1 ? -0 : value;
}

function frame(type: number, commitId: number, body: string): Buffer {
  const bodyBytes = Buffer.byteLength(body, 'utf8');
  if (bodyBytes > MAX_PAYLOAD_BYTES - PAYLOAD_HEAD) throw new RangeError(`commit ${commitId} is ${bodyBytes} bytes of log, more than the ${MAX_PAYLOAD_BYTES} allowed per record`);
  const buf = Buffer.allocUnsafe(FRAME_BYTES + PAYLOAD_HEAD + bodyBytes);
  buf.writeUInt32LE(PAYLOAD_HEAD + bodyBytes, 0);
  buf.writeUInt8(type, FRAME_BYTES);
  buf.writeBigUInt64LE(BigInt(commitId), FRAME_BYTES + 1);
  if (bodyBytes > 0) buf.write(body, FRAME_BYTES + PAYLOAD_HEAD, 'utf8');
  buf.writeUInt32LE(crc32(buf.subarray(FRAME_BYTES)), 4);
  return buf;
}

function isNegativeZero(v: unknown): boolean {
  return v === 0 && 1 / v < 0;
}

/** Whether any upserted value is -0 (JSON would write it as 0); cheaper than a replacer. */
function hasNegativeZero(tables: ChangeSet['tables']): boolean {
  for (const name in tables) {
    for (const row of tables[name]!.upserts) {
      for (const key in row) {
        const v = row[key];
        if (isNegativeZero(v)) return true;
        if (Array.isArray(v)) for (const x of v) if (isNegativeZero(x)) return true;
      }
    }
  }
  return false;
}

/** One framed commit record. */
export function encodeCommit(changes: ChangeSet): Buffer {
  const json = hasNegativeZero(changes.tables) ? JSON.stringify(changes.tables, keepNegativeZero) : JSON.stringify(changes.tables);
  return frame(RecordType.COMMIT, changes.commitId, json);
}

/** One framed abort record for `commitId`. */
export function encodeAbort(commitId: number): Buffer {
  return frame(RecordType.ABORT, commitId, '');
}

/** Decodes a checksummed payload; throws an Error naming what is wrong. */
export function decodePayload(payload: Buffer): WalRecord {
  if (payload.length < PAYLOAD_HEAD) throw new Error(`payload of ${payload.length} bytes is shorter than its ${PAYLOAD_HEAD}-byte head`);
  const type = payload.readUInt8(0);
  const id = payload.readBigUInt64LE(1);
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`commit id ${id} is not a safe integer`);
  const commitId = Number(id);
  if (type === RecordType.ABORT) {
    if (payload.length !== PAYLOAD_HEAD) throw new Error('abort record with a body');
    return { type: 'abort', commitId };
  }
  if (type !== RecordType.COMMIT) throw new Error(`unknown record type ${type}`);
  const tables = JSON.parse(payload.toString('utf8', PAYLOAD_HEAD), restoreNegativeZero) as unknown;
  if (typeof tables !== 'object' || tables === null || Array.isArray(tables)) throw new Error('commit body is not an object of tables');
  for (const [name, t] of Object.entries(tables)) {
    const tc = t as { upserts?: unknown; deletes?: unknown };
    if (!Array.isArray(tc?.upserts) || !Array.isArray(tc.deletes)) throw new Error(`table ${name}: expected {upserts: [], deletes: []}`);
  }
  return { type: 'commit', commitId, tables: tables as ChangeSet['tables'] };
}

export interface SegmentScan {
  readonly file: string;
  readonly fileBytes: number;
  /** Bytes up to the end of the last good record (the header alone counts as good). */
  readonly validBytes: number;
  readonly records: number;
  readonly firstCommit: number | null;
  readonly lastCommit: number | null;
  /** Why reading stopped before the end of the file (a torn or corrupt record), or null. */
  readonly problem: string | null;
  /** The header is not a lexicons WAL header: the file must not be cut or replayed. */
  readonly foreign: boolean;
}

const READ_CHUNK = 1 << 20;

/**
 * Reads a segment front to back, calling `onRecord` for each good record in order (awaited), and
 * stops at the first record that is torn (its frame runs past the end of the file), zero-length
 * (a zero-filled tail), oversized, fails its checksum or does not decode. Never writes.
 */
export async function scanSegment(file: string, onRecord?: (record: WalRecord, offset: number) => void | Promise<void>): Promise<SegmentScan> {
  const fh = await open(file, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    const result = (validBytes: number, records: number, first: number | null, last: number | null, problem: string | null, foreign = false): SegmentScan => ({
      file,
      fileBytes,
      validBytes,
      records,
      firstCommit: first,
      lastCommit: last,
      problem,
      foreign,
    });
    if (fileBytes < HEADER_BYTES) return result(0, 0, null, null, fileBytes === 0 ? null : `torn segment header (${fileBytes} of ${HEADER_BYTES} bytes)`);
    const head = Buffer.alloc(HEADER_BYTES);
    await fh.read(head, 0, HEADER_BYTES, 0);
    if (!head.equals(SEGMENT_MAGIC)) return result(0, 0, null, null, 'not a lexicons write-ahead log segment (bad magic)', true);

    let buf = Buffer.alloc(0);
    let bufStart = HEADER_BYTES; // file offset of buf[0]
    let readPos = HEADER_BYTES;
    let offset = HEADER_BYTES; // file offset of the next record
    let records = 0;
    let first: number | null = null;
    let last: number | null = null;
    /** Ensures buf holds file bytes [offset, offset + n); false at end of file. */
    const fill = async (n: number): Promise<boolean> => {
      while (bufStart + buf.length < offset + n) {
        if (readPos >= fileBytes) return false;
        const want = Math.max(READ_CHUNK, offset + n - readPos);
        const chunk = Buffer.allocUnsafe(Math.min(want, fileBytes - readPos));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, readPos);
        if (bytesRead === 0) return false;
        readPos += bytesRead;
        buf = Buffer.concat([buf.subarray(offset - bufStart), chunk.subarray(0, bytesRead)]);
        bufStart = offset;
      }
      return true;
    };
    for (;;) {
      if (offset === fileBytes) return result(offset, records, first, last, null);
      if (!(await fill(FRAME_BYTES))) return result(offset, records, first, last, `torn record header at offset ${offset} (${fileBytes - offset} bytes left)`);
      const at = offset - bufStart;
      const length = buf.readUInt32LE(at);
      const sum = buf.readUInt32LE(at + 4);
      if (length === 0) return result(offset, records, first, last, `zero-length record at offset ${offset} (zero-filled tail)`);
      if (length > MAX_PAYLOAD_BYTES) return result(offset, records, first, last, `record length ${length} at offset ${offset} is over the ${MAX_PAYLOAD_BYTES}-byte limit`);
      if (!(await fill(FRAME_BYTES + length))) {
        return result(offset, records, first, last, `torn record at offset ${offset}: ${length}-byte payload runs past the end of the file (${fileBytes - offset - FRAME_BYTES} bytes left)`);
      }
      const p = offset - bufStart + FRAME_BYTES;
      const payload = buf.subarray(p, p + length);
      if (crc32(payload) !== sum) return result(offset, records, first, last, `checksum mismatch in the record at offset ${offset}`);
      let record: WalRecord;
      try {
        record = decodePayload(payload);
      } catch (err) {
        return result(offset, records, first, last, `undecodable record at offset ${offset}: ${messageOf(err)}`);
      }
      await onRecord?.(record, offset);
      records++;
      first ??= record.commitId;
      last = record.commitId;
      offset += FRAME_BYTES + length;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Resolves the log's records into the commits that were published, in order. A record is
 * cancelled by an abort record with its commit id, or superseded by a later record reusing its
 * commit id (a dead writer's id is reused after the repair). Only the latest record can be
 * cancelled: {@link push} returns the records that became final, and {@link finish} the rest.
 */
export class LogResolver {
  #held: Array<WalRecord & { type: 'commit' }> = [];
  #released = 0;
  /** Records cancelled so far. */
  cancelled = 0;

  /** Feeds the next record; returns the commits that can no longer be cancelled. Throws LOG on an inconsistency. */
  push(record: WalRecord): Array<WalRecord & { type: 'commit' }> {
    if (record.commitId <= this.#released) {
      throw logError(`${record.type} record for commit ${record.commitId} after commit ${this.#released} was final (commit ids must increase)`);
    }
    const top = this.#held[this.#held.length - 1];
    if (top && top.commitId > record.commitId) {
      throw logError(`${record.type} record for commit ${record.commitId} after commit ${top.commitId} (commit ids must increase)`);
    }
    if (top && top.commitId === record.commitId) {
      this.#held.pop();
      this.cancelled++;
    }
    if (record.type === 'commit') this.#held.push(record);
    const out = this.#held.length > 1 ? this.#held.splice(0, this.#held.length - 1) : [];
    if (out.length > 0) this.#released = out[out.length - 1]!.commitId;
    return out;
  }

  /** The remaining records (the last commit is kept: its outcome is unknown, it is replayed). */
  finish(): Array<WalRecord & { type: 'commit' }> {
    const out = this.#held;
    this.#held = [];
    return out;
  }
}

/**
 * Creates (or empties) segment `n` in `dir` with its header, fsyncs it and the folder. Only for a
 * segment no record was ever appended to (a number above the current one).
 */
export async function createSegment(dir: string, n: number): Promise<string> {
  const path = segmentPath(dir, n);
  const fh = await open(path, 'w');
  try {
    await fh.write(SEGMENT_MAGIC, 0, HEADER_BYTES, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsyncDir(dir);
  return path;
}
