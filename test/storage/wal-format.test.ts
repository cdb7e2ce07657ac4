/**
 * The log's record codec and file names (wal-format.ts) on their own: frames, payload decoding
 * and its exact refusals, segment names. Reading whole segments (torn, corrupt tails) is in
 * wal.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodePayload, encodeAbort, encodeCommit, FRAME_BYTES, RecordType, segmentName, segmentNumber, segmentNumberOfAny } from '../../src/storage/wal-format.js';

/** A payload: [u8 type][u64 LE commit id][body]. */
function payload(type: number, id: bigint, body = ''): Buffer {
  const buf = Buffer.alloc(9 + Buffer.byteLength(body));
  buf.writeUInt8(type, 0);
  buf.writeBigUInt64LE(id, 1);
  buf.write(body, 9);
  return buf;
}

describe('record codec', () => {
  it('frames a commit as length, checksum and payload, and decodes it back (-0 kept)', () => {
    const tables = { T: { upserts: [{ pk: 'a', x: -0, list: [-0, 1], s: 'ü' }], deletes: ['b'] } };
    const frame = encodeCommit({ commitId: 42, tables });
    assert.equal(frame.readUInt32LE(0), frame.length - FRAME_BYTES);
    const record = decodePayload(frame.subarray(FRAME_BYTES));
    assert.deepEqual(record, { type: 'commit', commitId: 42, tables });
    const row = (record as { tables: typeof tables }).tables.T.upserts[0]!;
    assert.ok(Object.is(row.x, -0) && Object.is(row.list[0], -0));
    assert.deepEqual(decodePayload(encodeAbort(7).subarray(FRAME_BYTES)), { type: 'abort', commitId: 7 });
  });

  it('refuses payloads it did not write, saying why', () => {
    const cases: Array<[Buffer, string]> = [
      [Buffer.alloc(3), 'payload of 3 bytes is shorter than its 9-byte head'],
      [payload(RecordType.COMMIT, 2n ** 60n, '{}'), `commit id ${2n ** 60n} is not a safe integer`],
      [payload(RecordType.ABORT, 1n, 'x'), 'abort record with a body'],
      [payload(9, 1n), 'unknown record type 9'],
      [payload(RecordType.COMMIT, 1n, '[]'), 'commit body is not an object of tables'],
      [payload(RecordType.COMMIT, 1n, '{"T":{"upserts":[]}}'), 'table T: expected {upserts: [], deletes: []}'],
    ];
    for (const [bytes, message] of cases) assert.throws(() => decodePayload(bytes), { message }, message);
  });
});

describe('segment names', () => {
  it('are wal-<8+ digits>.log; set-aside segments keep their number', () => {
    assert.equal(segmentName(3), 'wal-00000003.log');
    assert.equal(segmentName(123456789), 'wal-123456789.log');
    assert.deepEqual(['wal-00000003.log', 'wal-3.log', 'wal-00000003.log.discarded', 'x.log'].map(segmentNumber), [3, null, null, null]);
    assert.deepEqual(['wal-00000003.log.discarded', 'wal-00000004.log', 'snapshot.json'].map(segmentNumberOfAny), [3, 4, null]);
  });
});
