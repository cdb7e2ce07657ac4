/**
 * csv-parse fed chunk by chunk (CsvRecords in csv.ts): records written by csv-stringify come back
 * intact whatever the chunk boundaries (inside a quoted cell, between the two quotes of `""`,
 * inside a CRLF, inside a BOM), null and "" told apart, line numbers exact, csv-parse's error
 * codes for malformed text, and early stops.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CsvRecords, formatRecords } from '../../src/storage/csv.js';
import type { Cell } from '../../src/storage/csv-codec.js';

/** Parses `bytes` fed in chunks cut at `cuts` (byte offsets); returns records and the lines they start on. */
async function parse(bytes: Buffer, cuts: number[] = []): Promise<{ records: Cell[][]; lines: number[] }> {
  const records: Cell[][] = [];
  const lines: number[] = [];
  const reader = new CsvRecords((cells, line) => {
    records.push(cells);
    lines.push(line);
  });
  try {
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      await reader.write(bytes.subarray(at, cut));
      at = cut;
    }
    await reader.end();
  } finally {
    reader.destroy();
  }
  return { records, lines };
}

function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

const PIECES = ['a', 'é', '中', '🎉', ',', '"', '""', '\n', '\r\n', ' ', 'x,y', '\r'];

describe('csv-parse fed in chunks', () => {
  it('gives back what csv-stringify wrote, with any chunk boundaries (nulls, "", quotes, commas, LF and CRLF inside cells)', async () => {
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
    const expectedLines: number[] = [];
    let line = 1;
    for (const r of records) {
      expectedLines.push(line);
      line += 1 + r.reduce((n, c) => n + (c?.split('\n').length ?? 1) - 1, 0);
    }
    for (let trial = 0; trial < 30; trial++) {
      const cuts: number[] = [];
      for (let at = 0; ; ) {
        at += 1 + Math.floor(rnd() * (trial < 10 ? 4 : 400));
        if (at >= bytes.length) break;
        cuts.push(at);
      }
      assert.deepEqual(await parse(bytes, cuts), { records, lines: expectedLines }, `trial ${trial}`);
    }
  });

  it('a BOM is dropped even when cut (and a quoted empty first cell after it stays ""); the last record may lack its line break', async () => {
    const bytes = Buffer.from('\uFEFF"",v\r\na,"x\r\ny\nz"\r\nb,""');
    for (const cuts of [[], [1], [2], [3, 4], [14, 15, 16], [24]]) {
      assert.deepEqual(await parse(bytes, cuts), { records: [['', 'v'], ['a', 'x\r\ny\nz'], ['b', '']], lines: [1, 2, 5] }, String(cuts));
    }
    assert.deepEqual((await parse(Buffer.from('a,b\n1,\n'))).records, [['a', 'b'], ['1', null]], 'a comma before the line break: an empty cell');
    assert.deepEqual((await parse(Buffer.from('a,b\n1,'))).records, [['a', 'b'], ['1', null]], 'and before the end of the file');
    assert.deepEqual((await parse(Buffer.from('a,b\r\n,""\r\n"",\r\n,\r\n'), [7, 8, 13])).records, [['a', 'b'], [null, ''], ['', null], [null, null]], 'CRLF, "" cut between its quotes');
  });

  it("refuses malformed text with csv-parse's codes and the cell's index", async () => {
    const cases: Array<[string, string, number | undefined]> = [
      ['a,b\n1,"open\n2,3\n', 'CSV_QUOTE_NOT_CLOSED', 1],
      ['a,b\n1,x"y\n', 'INVALID_OPENING_QUOTE', 1],
      ['a,b\n"x"y,1\n', 'CSV_INVALID_CLOSING_QUOTE', 0],
      ['a,b\n1,2,3\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', undefined],
      ['a,b\n\n1,2\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', undefined],
    ];
    for (const [text, code, index] of cases) {
      await assert.rejects(parse(Buffer.from(text), [5]), (err: { code?: string; index?: number }) => err.code === code && (index === undefined || err.index === index), text);
    }
  });

  it('stops when the handler returns false, and rethrows what the handler threw', async () => {
    let seen = 0;
    const reader = new CsvRecords(() => ++seen < 2);
    await reader.write(Buffer.from('a\nb\nc\nd\n'));
    assert.equal(seen, 2);
    assert.equal(reader.stopped, true);
    reader.destroy();
    const boom = new Error('boom');
    const failing = new CsvRecords((_cells, line) => {
      if (line === 3) throw boom;
    });
    await assert.rejects(failing.write(Buffer.from('a\nb\nc\nd\n')), (err) => err === boom);
    assert.equal(failing.line, 4, 'the line after the record that threw');
    failing.destroy();
  });
});
