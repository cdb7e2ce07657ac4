/**
 * Unit tests of the load generator's WebSocket framing: the masked templates it sends, the
 * incremental parser it reads with, the byte scanner and the histogram.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram } from '../../bench/loadgen/histogram.js';
import { scanNumber } from '../../bench/loadgen/protocols.js';
import { FrameParser, FrameTemplate, MASK_KEY, OPCODE, encodeFrame, frameLength } from '../../bench/loadgen/ws-frame.js';

interface Got {
  opcode: number;
  text: string;
}

function collect(): { parser: FrameParser; got: Got[] } {
  const got: Got[] = [];
  const parser = new FrameParser((opcode, buf, start, end) => got.push({ opcode, text: buf.toString('latin1', start, end) }));
  return { parser, got };
}

/** Unmask a client frame the way a server does. */
function unmask(frame: Buffer): { opcode: number; fin: boolean; payload: Buffer } {
  const { parser, got } = collect();
  parser.push(Buffer.from(frame));
  assert.equal(got.length, 1);
  return { opcode: got[0]!.opcode, fin: (frame[0]! & 0x80) !== 0, payload: Buffer.from(got[0]!.text, 'latin1') };
}

describe('encodeFrame', () => {
  it('uses 7-bit, 16-bit and 64-bit lengths at the boundaries', () => {
    for (const [n, header] of [[0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [70000, 10]] as const) {
      const frame = encodeFrame(Buffer.alloc(n, 0x61), OPCODE.TEXT, false);
      assert.equal(frame.length, header + n, `length ${n}`);
      assert.equal(frameLength(frame, 0, frame.length), header + n);
      const masked = encodeFrame(Buffer.alloc(n, 0x61));
      assert.equal(masked.length, header + 4 + n);
      assert.equal(masked[1]! & 0x80, 0x80, 'mask bit set');
      assert.deepEqual(unmask(masked).payload, Buffer.alloc(n, 0x61));
    }
  });

  it('masks with the fixed key', () => {
    const frame = encodeFrame('abcd');
    assert.deepEqual([...frame.subarray(2, 6)], [...MASK_KEY]);
    assert.equal(frame[6], 0x61 ^ MASK_KEY[0]!);
  });
});

describe('FrameTemplate', () => {
  it('patches numeric slots in the masked bytes (space-padded numbers, zero-padded strings)', () => {
    const tpl = new FrameTemplate('{"Echo":{"t":{t:15},"i":{i:4},"c":"c{k:6z}"}}');
    assert.deepEqual(tpl.names, ['t', 'i', 'k']);
    const out = Buffer.alloc(tpl.length * 2);
    const end = tpl.write(out, 0);
    tpl.set(out, 0, 0, 1234567890123);
    tpl.set(out, 0, 1, 7);
    tpl.set(out, 0, 2, 42);
    tpl.write(out, end);
    tpl.set(out, end, 0, 5);
    tpl.set(out, end, 1, 12345); // wraps: only 4 digits fit
    tpl.set(out, end, 2, 0);
    const a = unmask(out.subarray(0, end)).payload.toString();
    const b = unmask(out.subarray(end, 2 * end)).payload.toString();
    assert.deepEqual(JSON.parse(a), { Echo: { t: 1234567890123, i: 7, c: 'c000042' } });
    assert.deepEqual(JSON.parse(b), { Echo: { t: 5, i: 2345, c: 'c000000' } });
    assert.equal(a.length, b.length, 'fixed width');
  });

  it('builds 16-bit length frames for long templates', () => {
    const tpl = new FrameTemplate(`{"Echo":{"t":{t:15},"p":"${'x'.repeat(300)}"}}`);
    const out = Buffer.alloc(tpl.length);
    tpl.write(out, 0);
    tpl.set(out, 0, 0, 99);
    assert.equal(out[1]! & 0x7f, 126);
    assert.equal(JSON.parse(unmask(out).payload.toString()).Echo.t, 99);
  });
});

describe('FrameParser', () => {
  const texts = ['a', '[{"Echo":{"t":1}}]', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(70_000), ''];
  const stream = Buffer.concat(texts.map((t) => encodeFrame(t, OPCODE.TEXT, false)));

  it('parses many frames from one chunk', () => {
    const { parser, got } = collect();
    parser.push(stream);
    assert.deepEqual(got.map((g) => g.text), texts);
  });

  it('parses frames split at every possible boundary (header and payload)', () => {
    const small = Buffer.concat(['hi', 'y'.repeat(200), 'w'.repeat(130)].map((t) => encodeFrame(t, OPCODE.TEXT, false)));
    for (let cut = 1; cut < small.length; cut++) {
      const { parser, got } = collect();
      parser.push(small.subarray(0, cut));
      parser.push(small.subarray(cut));
      assert.deepEqual(got.map((g) => g.text), ['hi', 'y'.repeat(200), 'w'.repeat(130)], `cut at ${cut}`);
    }
  });

  it('parses a stream fed one byte at a time and in odd-sized chunks, 64-bit lengths included', () => {
    for (const size of [1, 3, 7, 1000, 65_537]) {
      const { parser, got } = collect();
      for (let i = 0; i < stream.length; i += size) parser.push(stream.subarray(i, i + size));
      assert.deepEqual(got.map((g) => g.text), texts, `chunks of ${size}`);
    }
  });

  it('splits a 64-bit length header itself across chunks', () => {
    const frame = encodeFrame('q'.repeat(66_000), OPCODE.BINARY, false);
    const { parser, got } = collect();
    parser.push(frame.subarray(0, 5)); // inside the 8-byte extended length
    parser.push(frame.subarray(5, 9));
    parser.push(frame.subarray(9));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.opcode, OPCODE.BINARY);
    assert.equal(got[0]!.text.length, 66_000);
  });

  it('reassembles fragmented messages around control frames, and unmasks masked input', () => {
    const first = encodeFrame('hel', OPCODE.TEXT, true);
    first[0] = OPCODE.TEXT; // FIN = 0
    const middle = encodeFrame('lo ', OPCODE.CONTINUATION, false);
    middle[0] = OPCODE.CONTINUATION;
    const ping = encodeFrame('p', OPCODE.PING, false);
    const last = encodeFrame('world', OPCODE.CONTINUATION, false);
    const { parser, got } = collect();
    parser.push(Buffer.concat([first, middle, ping, last]));
    assert.deepEqual(got, [
      { opcode: OPCODE.PING, text: 'p' },
      { opcode: OPCODE.TEXT, text: 'hello world' },
    ]);
  });

  it('refuses frames over maxMessage', () => {
    const parser = new FrameParser(() => {}, 100);
    assert.throws(() => parser.push(encodeFrame('x'.repeat(200), OPCODE.TEXT, false).subarray(0, 10)), /exceeds maxMessage/);
  });
});

describe('scanNumber', () => {
  it('reads the number after a marker, spaces and zero padding allowed, within bounds', () => {
    const buf = Buffer.from('[{"Echo":{"t":   1234,"i":5}}] ~t0000042~c00000007~');
    assert.equal(scanNumber(buf, 0, buf.length, Buffer.from('"t":')), 1234);
    assert.equal(scanNumber(buf, 0, buf.length, Buffer.from('~t')), 42);
    assert.equal(scanNumber(buf, 0, buf.length, Buffer.from('~c')), 7);
    assert.equal(scanNumber(buf, 0, 10, Buffer.from('"t":')), -1, 'marker beyond end');
    assert.equal(scanNumber(Buffer.from('"t":x'), 0, 5, Buffer.from('"t":')), -1, 'no digits');
  });
});

describe('Histogram', () => {
  it('keeps quantiles within 1/64 and merges across processes', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let v = 1; v <= 100_000; v++) (v % 2 ? a : b).record(v);
    const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
    merged.merge(Histogram.fromJSON(b.toJSON()));
    assert.equal(merged.count, 100_000);
    for (const q of [0.5, 0.9, 0.99, 0.999]) {
      const exact = q * 100_000;
      assert.ok(Math.abs(merged.quantile(q) - exact) / exact < 1 / 64, `q${q}: ${merged.quantile(q)} vs ${exact}`);
    }
    assert.equal(merged.quantile(1), 100_000);
    assert.equal(merged.min, 1);
    assert.ok(merged.quantile(0.5) <= merged.quantile(0.99));
  });

  it('records small values exactly and clamps negatives to 0', () => {
    const h = new Histogram();
    h.record(-5);
    h.record(3);
    h.record(3);
    assert.equal(h.quantile(0), 0);
    assert.equal(h.quantile(1), 3);
    assert.deepEqual(h.summaryMs().samples, 3);
  });
});
