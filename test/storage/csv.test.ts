/**
 * CSV files as text (csv.ts): the streaming read (BOM, null vs "", multi-byte characters across
 * read chunks, line numbers, malformed files) and csv-stringify's formatting.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLexiconsError } from '../../src/errors.js';
import { formatRecords, readCsvFile } from '../../src/storage/csv.js';
import type { Cell } from '../../src/storage/csv-codec.js';
import { readAll } from './fixtures/csv-files.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('csv streaming read', () => {
  test('a BOM at the very start of the file is stripped; a BOM inside a cell is kept', async () => {
    await using folder = await tempDir('lexicons-csv-');
    const dir = folder.path;
    const file = join(dir, 'bom.csv');
    await writeFile(file, '\uFEFFpk,v\r\n\uFEFFk,\uFEFFx\r\n');
    assert.deepEqual(await readAll(file), [['pk', 'v'], ['\uFEFFk', '\uFEFFx']]);
  });

  test('empty unquoted cells are null and quoted empty cells are "", wherever they sit in the record', async () => {
    await using folder = await tempDir('lexicons-csv-');
    const dir = folder.path;
    const file = join(dir, 'empties.csv');
    await writeFile(file, 'a,b,c,d\n"",,"x,""y"",",\n,"",,""\n"""",,"a\nb",""\n');
    assert.deepEqual(await readAll(file), [
      ['a', 'b', 'c', 'd'],
      ['', null, 'x,"y",', null],
      [null, '', null, ''],
      ['"', null, 'a\nb', ''],
    ]);
  });

  test('multi-byte characters split across 64 KiB read chunks are decoded intact', async () => {
    await using folder = await tempDir('lexicons-csv-');
    const dir = folder.path;
    const file = join(dir, 'wide.csv');
    const records: Cell[][] = [['pk', 'v']];
    for (let i = 0; i < 20_000; i++) records.push([`k${i}`, `${'é'.repeat(i % 7)}🎉中${i}`]);
    const text = formatRecords(records);
    const bytes = Buffer.from(text);
    const splits = [1, 2, 3, 4, 5, 6].filter((k) => (bytes[k << 16]! & 0xc0) === 0x80);
    assert.ok(splits.length > 0, 'a read chunk boundary falls inside a character');
    await writeFile(file, bytes);
    assert.deepEqual(await readAll(file), records);
  });

  test('line numbers count line breaks inside quoted cells (LF and CRLF)', async () => {
    await using folder = await tempDir('lexicons-csv-');
    const dir = folder.path;
    const file = join(dir, 'lines.csv');
    await writeFile(file, 'pk,v\r\na,"x\r\ny\r\nz"\r\nb,w\r\n');
    const lines: number[] = [];
    await readCsvFile(file, (_cells, line) => {
      lines.push(line);
    });
    assert.deepEqual(lines, [1, 2, 5]);
  });

  test('malformed files: unclosed quote, wrong cell count, stray quote, invalid UTF-8, unreadable', async () => {
    await using folder = await tempDir('lexicons-csv-');
    const dir = folder.path;
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['quote.csv', 'pk,v\na,1\nb,"open\nc,2\n', /quote\.csv, line 3, column v: unclosed quote/],
      ['count.csv', 'pk,v\na,1\nb,1,2\n', /count\.csv, line 3: wrong number of cells \(Invalid Record Length: expect 2, got 3\)/],
      ['stray.csv', 'pk,v\na,x"y\n', /stray\.csv, line 2, column v: Invalid Opening Quote/],
      ['utf8.csv', Buffer.from([0x70, 0x6b, 0x0a, 0xff, 0xfe, 0x0a]), /utf8\.csv: not valid UTF-8/],
    ];
    for (const [name, content, re] of cases) {
      const file = join(dir, name);
      await writeFile(file, content);
      await assert.rejects(readCsvFile(file, () => undefined, (i) => ['pk', 'v'][i]), (e) => isLexiconsError(e, 'CSV') && re.test(e.message), name);
    }
    await assert.rejects(readCsvFile(dir, () => undefined), (e) => isLexiconsError(e, 'CSV') && /cannot read: EISDIR/.test(e.message));
  });
});

describe('csv formatting', () => {
  test('formatRecords quotes only what needs it (the empty string, separators, quotes, line breaks); null is an empty cell; LF ends every record', () => {
    assert.equal(formatRecords([['pk', 'v'], ['a', ''], ['b', null], ['c', 'x,y'], ['d', 'say "hi"'], ['e', 'two\nlines']]), 'pk,v\na,""\nb,\nc,"x,y"\nd,"say ""hi"""\ne,"two\nlines"\n');
    assert.equal(formatRecords([]), '');
  });
});
