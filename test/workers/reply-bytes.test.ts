/**
 * Reply frames keep `db.queryJson` rows as UTF-8 bytes from the query to the packed frame bytes
 * (src/json-pieces.ts, workers/recorder.ts `pack`): the packed bytes are byte for byte those of
 * the string path (the rows decoded to a string by jsonText, the frame encoded to UTF-8 again),
 * and the text of plain `JSON.stringify` over the parsed rows — for rows with non-ASCII text and
 * escapes, empty lists, slices, reversed rows, rows nested in objects and arrays, two JsonRows in
 * one reply, a whole payload that is rows; for `ws.send`, the held and tagged items of a call
 * with `$id` (and its `$key` outcome), and Signal responses to channels. The bytes sent are those
 * of the rows when they were sent (a later `reverse()` changes nothing).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Json } from '../../src/components.js';
import { unpackEffects, type ConnectionSnapshot } from '../../src/job-contract.js';
import { JsonPieces } from '../../src/json-pieces.js';
import { jsonPieces, jsonText } from '../../src/json-text.js';
import { itemText } from '../../src/protocol.js';
import { JsonRows } from '../../src/storage/json-rows.js';
import { compileSchema } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { ChannelView } from '../../src/workers/channel-view.js';
import { ConnectionHandle } from '../../src/workers/handles.js';
import { Recorder } from '../../src/workers/recorder.js';
import { ChatMessage, User } from '../storage/fixtures/schema.js';

const TEXTS = ['', 'plain', 'quote " backslash \\ slash /', 'tab\tnew\nline\r\u0000\u001f\u007f', 'ünïcödé ✓ 漢字 😀', '\ud800 lone', '\u2028\u2029', '{"pk":"x"}', `${'é'.repeat(40)} long ${'x'.repeat(200)}`];

function store(): SharedStore {
  const s = SharedStore.create(compileSchema([User, ChatMessage]), { initialRows: 4, maxBytesPerBuffer: 64 << 20 });
  s.runSync((db) => {
    db.create(User, { pk: 'u1', email: 'ü@x', score: 1, admin: false, tags: [], roles: [], password: 'p' });
    for (let i = 0; i < 30; i++) db.create(ChatMessage, { pk: `m${i}${TEXTS[i % TEXTS.length]}`, author: i % 4 === 0 ? null : 'u1', channel: i % 2 === 0 ? 'Public' : 'Ünï', content: TEXTS[i % TEXTS.length]!, timestamp: 1733150000.5 + i });
  });
  return s;
}

const rowsOf = (s: SharedStore, channel: string, limit = 10): JsonRows => s.runSync((db) => db.queryJson(ChatMessage, { channel, _sort: '-timestamp', _limit: limit })).value;

const c1: ConnectionSnapshot = { id: 'c1', address: '127.0.0.1', auth: undefined, channels: [] };

function setUp(): { recorder: Recorder; ws: ConnectionHandle } {
  const recorder = new Recorder(new ChannelView(['Public']));
  return { recorder, ws: new ConnectionHandle(c1, recorder) };
}

/** The packed bytes of `ws.send(payload)` (rows as pieces), and of the string path (jsonText, then encoded). */
function bothPaths(payload: unknown): { pieces: Buffer; string: Buffer } {
  const a = setUp();
  a.ws.send(payload as Json);
  const b = setUp();
  b.recorder.push({ kind: 'send', connectionId: 'c1', text: jsonText(payload)! });
  return { pieces: Buffer.from(a.recorder.pack([a.ws]).bytes), string: Buffer.from(b.recorder.pack([b.ws]).bytes) };
}

/** Packs `payload` both ways: the same bytes, and the text plain JSON.stringify gives (rows parsed back). */
function assertSameBytes(payload: unknown, message: string): Buffer {
  assert.ok(jsonPieces(payload) instanceof JsonPieces, `${message}: the rows travel as bytes`);
  const { pieces, string } = bothPaths(payload);
  assert.ok(pieces.equals(string), `${message}: pieces ${pieces.toString()} vs string ${string.toString()}`);
  assert.ok(pieces.equals(Buffer.from(JSON.stringify(payload))), `${message}: vs JSON.stringify`);
  return pieces;
}

describe('reply frames with queryJson rows as bytes', () => {
  it('ws.send: the same bytes as the string path for rows with non-ASCII text and escapes, nested, sliced, reversed, two in one reply, empty', () => {
    const s = store();
    const rows = rowsOf(s, 'Public');
    const other = rowsOf(s, 'Ünï', 7);
    const none = rowsOf(s, 'none such');
    assert.equal(rows.length, 10);
    assert.equal(none.length, 0);
    const bytes = assertSameBytes([{ GetChatList: { channel: 'Public', messages: rows } }], 'a GetChatList reply');
    assert.ok(bytes.toString().includes('漢字 😀'), 'non-ASCII text is in the frame');
    assertSameBytes(rows, 'the whole payload is rows');
    assertSameBytes({ a: { b: [1, rows, 'ü'] }, c: 'x' }, 'rows nested in an object and in an array');
    assertSameBytes([rows, other], 'two JsonRows in one array');
    assertSameBytes({ first: rows, second: other, again: rows }, 'two JsonRows in one object, one twice');
    assertSameBytes({ empty: none, tail: none.slice(0) }, 'empty lists');
    assertSameBytes([rows.slice(2, 5), rows.slice(-3), rows.slice(4, 4), rows.slice(1).reverse()], 'slices');
    assertSameBytes([{ List: other.reverse() }], 'reversed');
  });

  it('rows built from strings stay a string (nothing to keep as bytes), and give the same frame', () => {
    const rows = new JsonRows(['{"pk":"a","x":"ü"}', '{"pk":"b"}']);
    assert.equal(typeof jsonPieces({ rows }), 'string');
    const { pieces, string } = bothPaths({ rows });
    assert.ok(pieces.equals(string));
    assert.equal(pieces.toString(), '{"rows":[{"pk":"a","x":"ü"},{"pk":"b"}]}');
  });

  it('what is sent is the rows as they were when sent: a later reverse() changes only later sends', () => {
    const s = store();
    const rows = rowsOf(s, 'Public', 4);
    const before = jsonText(rows)!;
    const { recorder, ws } = setUp();
    ws.send({ rows });
    rows.reverse();
    ws.send({ rows });
    const [first, second] = unpackEffects(recorder.pack([ws]), ['c1']);
    assert.deepEqual(first, { kind: 'send', connectionId: 'c1', text: `{"rows":${before}}` });
    assert.deepEqual(second, { kind: 'send', connectionId: 'c1', text: `{"rows":${jsonText(rows)}}` });
    assert.notEqual(jsonText(rows), before);
  });

  it('a call with $id: its list items held, tagged, in its reply frame; its $key outcome untagged, as text', () => {
    const s = store();
    const rows = rowsOf(s, 'Ünï', 5);
    const item = { GetChatList: { channel: 'Ünï', messages: rows } };
    const { recorder, ws } = setUp();
    recorder.beginCall('c1', 'call-ü', 'key-1');
    ws.send([item, rows]);
    recorder.endCall(0);
    const packed = recorder.pack([ws]);
    const plain = JSON.stringify(item);
    const expected = `[${plain.slice(0, -1)},"$id":"call-ü"},${JSON.stringify(rows)}]`;
    assert.ok(Buffer.from(packed.bytes).equals(Buffer.from(expected)), Buffer.from(packed.bytes).toString());
    assert.deepEqual(packed.keyed, [{ connection: 0, key: 'key-1', items: [plain, JSON.stringify(rows)] }]);
    assert.deepEqual(recorder.effects(), [{ kind: 'send', connectionId: 'c1', text: expected }]);
  });

  it('Signal responses to channels (merged items, the caller\'s tagged copy) and a send outside the job', () => {
    const s = store();
    const rows = rowsOf(s, 'Public', 3);
    const { recorder, ws } = setUp();
    const first = itemText('List', { messages: rows });
    assert.ok(first instanceof JsonPieces);
    recorder.respond(0, first, ['Public']);
    recorder.respond(0, itemText('List', rows.slice(1)), ['Public']);
    recorder.beginCall('c1', 9);
    recorder.callItem(recorder.respond(1, itemText('Mine', { rows }), ['Public'], 'c1'));
    recorder.endCall(1);
    recorder.send('elsewhere', { rows });
    const text = JSON.stringify(rows);
    const expected = [
      { kind: 'publish', channels: ['Public'], text: `[{"List":{"messages":${text}}},{"List":${JSON.stringify(rows.slice(1))}}]` },
      { kind: 'publish', channels: ['Public'], text: `[{"Mine":{"rows":${text}}}]`, except: 'c1' },
      { kind: 'send', connectionId: 'c1', text: `[{"Mine":{"rows":${text}},"$id":9}]` },
      { kind: 'send', connectionId: 'elsewhere', text: `{"rows":${text}}` },
    ];
    assert.deepEqual(recorder.effects(), expected);
    assert.deepEqual(unpackEffects(recorder.pack([ws]), ['c1']), expected);
  });
});
