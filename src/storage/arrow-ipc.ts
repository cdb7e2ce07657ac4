/**
 * @module storage/arrow-ipc
 * The Arrow IPC *file* format, framed here around our own buffers: apache-arrow encodes the
 * flatbuffer metadata (schema, record batch and dictionary batch headers, footer), and the bodies
 * are the column buffers themselves, handed to the writer as views (over shared memory when a
 * table's rows are contiguous), never re-assembled. apache-arrow's `RecordBatchFileWriter` does the
 * same job but concatenates every body into one array first (measured: 0.57 s of CPU for 1M
 * ChatMessage rows, against a few ms here). Files written here are plain Arrow files (magic,
 * schema message, dictionary batches, one record batch, end-of-stream marker, footer): apache-arrow
 * and pyarrow read them.
 *
 * Reading is the other half: the footer and each message's metadata are decoded by apache-arrow,
 * and the caller reads every body buffer itself, straight into its destination.
 *
 * ```
 * file     "ARROW1\0\0" <schema message> <dictionary batches> <record batch> <EOS> <footer> <i32 footer bytes> "ARROW1"
 * message  <0xFFFFFFFF> <i32 metadata bytes incl. padding> <flatbuffer Message> <pad to 8> <body: buffers, each padded to 8>
 * ```
 */
import type * as arrow from 'apache-arrow';
import { MetadataVersion } from 'apache-arrow/enum';
import { FileBlock, Footer } from 'apache-arrow/ipc/metadata/file';
import { BufferRegion, DictionaryBatch, FieldNode, Message, RecordBatch } from 'apache-arrow/ipc/metadata/message';

/** One buffer of a batch body: the byte chunks it is made of, in order. */
export type BodyBuffer = readonly Uint8Array[];

/** A record batch (or a dictionary's values) as its field nodes and buffers, in Arrow's depth-first order. */
export interface BatchBody {
  readonly length: number;
  readonly nodes: ReadonlyArray<{ readonly length: number; readonly nullCount: number }>;
  readonly buffers: readonly BodyBuffer[];
}

const MAGIC = Buffer.from('ARROW1', 'latin1');
const ZEROS = new Uint8Array(8);

function pad8(n: number): number {
  return (n + 7) & ~7;
}

function bytesOf(buffer: BodyBuffer): number {
  let n = 0;
  for (const c of buffer) n += c.byteLength;
  return n;
}

function int32s(...values: number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(values).buffer);
}

/** Collects the chunks of a file and their running position. */
class ChunkList {
  readonly chunks: Uint8Array[] = [];
  position = 0;
  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.position += chunk.byteLength;
  }
  pad(): void {
    const n = pad8(this.position) - this.position;
    if (n > 0) this.push(ZEROS.subarray(0, n));
  }
  /** Writes one message (metadata framed and padded, then the body); returns its file block. */
  message(message: Message, body: readonly BodyBuffer[]): FileBlock {
    const offset = this.position;
    const meta = Message.encode(message);
    const metaLength = pad8(meta.byteLength + 8);
    this.push(int32s(-1, metaLength - 8));
    this.push(meta);
    this.pad();
    for (const buffer of body) {
      for (const c of buffer) this.push(c);
      this.pad();
    }
    return new FileBlock(metaLength, message.bodyLength, offset);
  }
}

/** The buffer regions of a body (offsets relative to the body start, each padded to 8) and its length. */
function regions(body: BatchBody): { buffers: BufferRegion[]; bodyLength: number } {
  let offset = 0;
  const buffers = body.buffers.map((b) => {
    const length = bytesOf(b);
    const region = new BufferRegion(offset, length);
    offset += pad8(length);
    return region;
  });
  return { buffers, bodyLength: offset };
}

function batchMeta(body: BatchBody): { meta: RecordBatch; bodyLength: number } {
  const { buffers, bodyLength } = regions(body);
  const nodes = body.nodes.map((n) => new FieldNode(n.length, n.nullCount));
  return { meta: new RecordBatch(body.length, nodes, buffers, null), bodyLength };
}

/**
 * The chunks of an Arrow IPC file holding `schema`, the given dictionaries (one batch each, ids as
 * in the schema's Dictionary types) and one record batch. Body chunks are the caller's views.
 */
export function ipcFileChunks(schema: arrow.Schema, dictionaries: ReadonlyArray<{ id: number; values: BatchBody }>, batch: BatchBody): { chunks: Uint8Array[]; bytes: number } {
  const out = new ChunkList();
  out.push(MAGIC);
  out.pad();
  out.message(Message.from(schema) as Message, []);
  const dictBlocks = dictionaries.map(({ id, values }) => {
    const { meta, bodyLength } = batchMeta(values);
    return out.message(Message.from(new DictionaryBatch(meta, id, false), bodyLength) as Message, values.buffers);
  });
  const { meta, bodyLength } = batchMeta(batch);
  const block = out.message(Message.from(meta, bodyLength) as Message, batch.buffers);
  out.push(int32s(-1, 0)); // end-of-stream marker, for sequential readers
  const footer = Footer.encode(new Footer(schema, MetadataVersion.V5, [block], dictBlocks));
  out.push(footer);
  out.push(int32s(footer.byteLength));
  out.push(MAGIC);
  return { chunks: out.chunks, bytes: out.position };
}

// -- reading -----------------------------------------------------------------------------------

/** Reads `length` bytes at `position` of the file into a new array (throws on a short read). */
export type ReadAt = (position: number, length: number) => Uint8Array;

/** One batch of a file: where its body starts in the file, its nodes and buffer regions. */
export interface FileBatch {
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly length: number;
  readonly nodes: ReadonlyArray<{ readonly length: number; readonly nullCount: number }>;
  readonly buffers: ReadonlyArray<{ readonly offset: number; readonly length: number }>;
  /** Whether the body is compressed (never by our writer; such files take the generic path). */
  readonly compressed: boolean;
}

export interface FileLayout {
  readonly schema: arrow.Schema;
  readonly dictionaries: ReadonlyArray<FileBatch & { readonly id: number; readonly isDelta: boolean }>;
  readonly batches: readonly FileBatch[];
}

function batchAt(readAt: ReadAt, block: FileBlock, what: string): { message: Message; batch: FileBatch } {
  const head = readAt(block.offset, block.metaDataLength);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const prefixed = view.getInt32(0, true) === -1;
  const start = prefixed ? 8 : 4;
  const length = view.getInt32(prefixed ? 4 : 0, true);
  if (length < 0 || start + length > head.byteLength) throw new Error(`${what}: message metadata runs past its block`);
  const message = Message.decode(head.subarray(start, start + length));
  const meta: RecordBatch = message.isDictionaryBatch() ? message.header().data : (message.header() as RecordBatch);
  for (const r of meta.buffers) if (r.offset < 0 || r.offset + r.length > Number(message.bodyLength)) throw new Error(`${what}: a buffer runs past its body`);
  return {
    message,
    batch: {
      bodyOffset: block.offset + block.metaDataLength,
      bodyLength: Number(message.bodyLength),
      length: Number(meta.length),
      nodes: meta.nodes.map((n) => ({ length: Number(n.length), nullCount: Number(n.nullCount) })),
      buffers: meta.buffers.map((b) => ({ offset: Number(b.offset), length: Number(b.length) })),
      compressed: meta.compression !== null,
    },
  };
}

/** Decodes the footer and every batch's metadata of an Arrow IPC file of `size` bytes. Throws on a malformed file. */
export function readFileLayout(readAt: ReadAt, size: number): FileLayout {
  if (size < 8 + 10) throw new Error(`${size} bytes: too short for an Arrow file`);
  const head = readAt(0, 6);
  const tail = readAt(size - 10, 10);
  if (!MAGIC.equals(head) || !MAGIC.equals(tail.subarray(4))) throw new Error('not an Arrow IPC file (no ARROW1 magic at both ends)');
  const footerLength = new DataView(tail.buffer, tail.byteOffset, 4).getInt32(0, true);
  if (footerLength <= 0 || footerLength > size - 18) throw new Error(`bad footer length ${footerLength}`);
  const footer = Footer.decode(readAt(size - 10 - footerLength, footerLength));
  const inFile = (b: FileBlock): FileBlock => {
    if (b.offset < 8 || b.offset + b.metaDataLength + Number(b.bodyLength) > size - 10 - footerLength) throw new Error(`a block at ${b.offset} runs past the data`);
    return b;
  };
  const dictionaries = [...footer.dictionaryBatches()].map((b, i) => {
    const { message, batch } = batchAt(readAt, inFile(b), `dictionary batch ${i}`);
    if (!message.isDictionaryBatch()) throw new Error(`dictionary block ${i} holds no dictionary batch`);
    const header = message.header();
    return { ...batch, id: Number(header.id), isDelta: header.isDelta };
  });
  const batches = [...footer.recordBatches()].map((b, i) => {
    const { message, batch } = batchAt(readAt, inFile(b), `record batch ${i}`);
    if (!message.isRecordBatch()) throw new Error(`record batch block ${i} holds no record batch`);
    return batch;
  });
  return { schema: footer.schema, dictionaries, batches };
}
