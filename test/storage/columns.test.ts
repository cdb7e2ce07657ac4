/**
 * Columns below the table: growable buffers (grow-buf.ts), the Arrow-layout value stores
 * (column-values.ts) and a column's validity + values (columns.ts), written and read back slot by
 * slot and as Arrow data.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as arrow from 'apache-arrow';
import { isLexiconsError } from '../../src/errors.js';
import { Bitmap, MAX_UTF8_BYTES, Utf8Values } from '../../src/storage/column-values.js';
import { Column, type ColumnSpec } from '../../src/storage/columns.js';
import { GrowBuf } from '../../src/storage/grow-buf.js';

const alloc = (label: string, bytes: number): GrowBuf => GrowBuf.allocate(bytes, 1 << 20, label, true);

function roundTrip(spec: ColumnSpec, values: unknown[]): { column: Column; back: unknown[]; arrowValues: unknown[] } {
  const column = new Column(spec, alloc, 'T.c', 2);
  values.forEach((v, i) => column.write(i, v));
  const back = values.map((_, i) => column.read(i));
  const vector = arrow.makeVector(column.arrowData(values.length));
  const num = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);
  const arrowValues = [...vector].map((v: unknown) => (v instanceof arrow.Vector ? [...v].map(num) : num(v)));
  return { column, back, arrowValues };
}

describe('GrowBuf', () => {
  it('grows geometrically in 8-byte steps, and refuses past its maximum with a CAPACITY error naming it', () => {
    const buf = GrowBuf.allocate(10, 100, 'T.c values', true);
    assert.ok(buf.buffer instanceof SharedArrayBuffer);
    assert.equal(buf.byteLength, 16);
    buf.ensure(17);
    assert.equal(buf.byteLength, 32, 'doubles');
    buf.ensure(90);
    assert.equal(buf.byteLength, 96);
    buf.ensure(96);
    assert.equal(buf.byteLength, 96, 'no growth when large enough');
    assert.throws(
      () => buf.ensure(200),
      (e) => isLexiconsError(e, 'CAPACITY') && e.message === 'T.c values: buffer is full at 96 bytes and cannot grow to 200 bytes (raise maxBytesPerBuffer)',
    );
    assert.ok(!(GrowBuf.allocate(8, 64, 'copy', false).buffer instanceof SharedArrayBuffer), 'gathered copies are plain resizable buffers');
  });

  it('re-creates its typed views after growth, so an index past the old end is addressable', () => {
    const buf = GrowBuf.allocate(8, 1024, 'x', true);
    const before = buf.i32(1);
    buf.ensure(512);
    const after = buf.i32(100);
    assert.notEqual(before, after);
    after[100] = 7;
    assert.equal(buf.i32(100)[100], 7);
    assert.equal(buf.u8(400)[400], 7, 'every view sees the same bytes');
  });
});

describe('Column', () => {
  it('round-trips every scalar kind with nulls, in slots and as Arrow data', () => {
    const cases: Array<[ColumnSpec, unknown[]]> = [
      [{ kind: 'int' }, [1, null, -9007199254740991, 0]],
      [{ kind: 'float' }, [0.5, -0, null, 1e300]],
      [{ kind: 'bool' }, [true, false, null, true, true, false, true, false, true]],
      [{ kind: 'str' }, ['a', '', null, 'ünï 🎉']],
      [{ kind: 'ref' }, ['u1', null]],
    ];
    for (const [spec, values] of cases) {
      const { back, arrowValues } = roundTrip(spec, values);
      assert.deepEqual(back, values, spec.kind);
      assert.deepEqual(arrowValues, values.map((v) => (Object.is(v, -0) ? -0 : v)), `${spec.kind} as Arrow`);
    }
  });

  it('round-trips lists and sets of each element kind, and dictionary-encoded strings', () => {
    const lists = roundTrip({ kind: 'list', element: 'int' }, [[1, 2], [], null, [3]]);
    assert.deepEqual(lists.back, [[1, 2], [], null, [3]]);
    assert.deepEqual(lists.arrowValues, [[1, 2], [], null, [3]]);
    assert.deepEqual(roundTrip({ kind: 'set', element: 'str' }, [['a'], null, ['b', 'c']]).back, [['a'], null, ['b', 'c']]);
    const control = new Int32Array(new SharedArrayBuffer(8));
    const dict = roundTrip({ kind: 'str', dictionary: { control, countSlot: 1, id: 0 } }, ['general', 'random', null, 'general']);
    assert.deepEqual(dict.back, ['general', 'random', null, 'general']);
    assert.equal(Atomics.load(control, 1), 2, 'two dictionary entries, counted in the control block');
    assert.deepEqual(dict.arrowValues, ['general', 'random', null, 'general']);
  });

  it('a null string keeps its slot addressable (an empty range); Utf8 offsets stop at 2 GiB', () => {
    const values = new Utf8Values(alloc('o', 8), alloc('d', 8));
    values.write(0, 'ab');
    values.writeNull(1);
    values.write(2, 'c');
    assert.deepEqual([values.read(0), values.read(1), values.read(2)], ['ab', '', 'c']);
    assert.equal(MAX_UTF8_BYTES, 2 ** 31 - 1);
    const bits = new Bitmap(alloc('v', 1));
    bits.set(9, true);
    assert.deepEqual([bits.get(8), bits.get(9)], [false, true]);
    assert.deepEqual([...bits.view(10)], [0, 2]);
  });
});
