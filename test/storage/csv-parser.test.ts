/**
 * The CSV parser (csv-parser.ts) alone: records written by csv-stringify come back intact whatever
 * the chunk boundaries (inside a quoted cell, between the two quotes of `""`, inside a CRLF, inside
 * a BOM), and each malformation gives csv-parse's error code.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatRecords } from '../../src/storage/csv.js';
import type { Cell } from '../../src/storage/csv-codec.js';
import { CsvParseError, CsvParser } from '../../src/storage/csv-parser.js';

/** Parses `bytes` pushed in chunks cut at `cuts` (byte offsets); returns records and their inner line counts. */
function parse(bytes: Buffer, cuts: number[] = []): { records: Cell[][]; inner: number[] } {
  const records: Cell[][] = [];
  const inner: number[] = [];
  const parser = new CsvParser((cells, n) => {
    records.push(cells);
    inner.push(n);
    return true;
  });
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    parser.push(bytes.subarray(at, cut));
    at = cut;
  }
  parser.end();
  return { records, inner };
}

function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

const PIECES = ['a', 'é', '中', '🎉', ',', '"', '""', '\n', '\r\n', ' ', 'x,y', '\r'];

describe('csv parser', () => {
  it('gives back what csv-stringify wrote, with any chunk boundaries (nulls, "", quotes, commas, LF and CRLF inside cells)', () => {
    const rnd = random(7);
    const records: Cell[][] = [['pk', 'a', 'b', 'c']];
    for (let i = 0; i < 400; i++) {
      const row: Cell[] = [`k${i}`];
      for (let k = 0; k < 3; k++) {
        const r = rnd();
        if (r < 0.15) row.push(null);
        else if (r < 0.25) row.push('');
        else row.push(Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => PIECES[Math.floor(rnd() * PIECES.length)]).join(''));
      }
      records.push(row);
    }
    const bytes = Buffer.from(formatRecords(records));
    for (let trial = 0; trial < 30; trial++) {
      const cuts: number[] = [];
      for (let at = 0; ; ) {
        at += 1 + Math.floor(rnd() * (trial < 10 ? 4 : 400));
        if (at >= bytes.length) break;
        cuts.push(at);
      }
      assert.deepEqual(parse(bytes, cuts).records, records, `trial ${trial}`);
    }
  });

  it('counts line breaks inside quoted cells; a BOM is dropped even when cut; the last record may lack its line break', () => {
    const bytes = Buffer.from('\uFEFFpk,v\r\na,"x\r\ny\nz"\r\nb,""');
    for (const cuts of [[], [1], [2], [3, 4], [14, 15, 16], [24]]) {
      assert.deepEqual(parse(bytes, cuts), { records: [['pk', 'v'], ['a', 'x\r\ny\nz'], ['b', '']], inner: [0, 2, 0] }, String(cuts));
    }
    // The record delimiter is the one the first record ends with, as csv-parse detected it.
    assert.deepEqual(parse(Buffer.from('a,b\nx\r,y\r\n1,2\n')).records, [['a', 'b'], ['x\r', 'y\r'], ['1', '2']], 'LF file: a CR is data');
    assert.deepEqual(parse(Buffer.from('a,b\r\nx,"y\n"\r\nz,w\nv\r\n')), { records: [['a', 'b'], ['x', 'y\n'], ['z', 'w\nv']], inner: [0, 1, 1] }, 'CRLF file: a lone LF is data');
    assert.deepEqual(parse(Buffer.from('a,b\n1,\n')).records, [['a', 'b'], ['1', null]], 'a comma before the line break: an empty cell');
    assert.deepEqual(parse(Buffer.from('a,b\n1,')).records, [['a', 'b'], ['1', null]], 'and before the end of the file');
  });

  it("refuses what csv-parse refused, with its codes and the cell's index", () => {
    const cases: Array<[string, string, number | undefined]> = [
      ['a,b\n1,"open\n2,3\n', 'CSV_QUOTE_NOT_CLOSED', 1],
      ['a,b\n1,x"y\n', 'CSV_INVALID_OPENING_QUOTE', 1],
      ['a,b\n"x"y,1\n', 'CSV_INVALID_CLOSING_QUOTE', 0],
      ['a,b\n1,2,3\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', undefined],
      ['a,b\n\n1,2\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', undefined],
    ];
    for (const [text, code, index] of cases) {
      assert.throws(() => parse(Buffer.from(text)), (err) => err instanceof CsvParseError && err.code === code && err.index === index, text);
    }
  });

  it('stops when the handler returns false', () => {
    let seen = 0;
    const parser = new CsvParser(() => ++seen < 2);
    parser.push(Buffer.from('a\nb\nc\nd\n'));
    assert.equal(seen, 2);
    assert.equal(parser.stopped, true);
  });
});
