/**
 * The side file of columns a Model no longer has (extra-columns.ts): what it holds, and that an
 * existing side file is never replaced by different content.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { planHeader } from '../../src/storage/csv-codec.js';
import { writeExtraFile } from '../../src/storage/extra-columns.js';
import { tableOf } from '../fixtures/csv/models.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('writeExtraFile', () => {
  it('keeps pk + the extra columns as text; identical content is not written twice, different content gets the next name', async () => {
    await using folder = await tempDir();
    const dir = folder.path;
    const file = join(dir, 'User.csv');
    const header = ['pk', 'email', 'legacy', 'password', 'note'];
    await writeFile(file, `${header.join(',')}\nu1,a@x,"old, value",p,\nu2,b@x,,p,n2\n`);
    const plan = planHeader(file, tableOf('User'), header);
    const first = await writeExtraFile(dir, 'User', plan);
    assert.equal(first, join(dir, 'User.extra.csv'));
    assert.equal(await readFile(first, 'utf8'), 'pk,legacy,note\nu1,"old, value",\nu2,,n2\n');
    assert.equal(await writeExtraFile(dir, 'User', plan), first, 'already preserved');
    await writeFile(file, `${header.join(',')}\nu3,c@x,other,p,\n`);
    assert.equal(await writeExtraFile(dir, 'User', plan), join(dir, 'User.extra.1.csv'));
    assert.equal(await readFile(first, 'utf8'), 'pk,legacy,note\nu1,"old, value",\nu2,,n2\n', 'the first side file is untouched');
  });
});
